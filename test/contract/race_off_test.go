//go:build !race

package contract

// raceEnabled is true when the tests run with the race detector, whose
// runtime changes the heap figures a test can measure.
const raceEnabled = false
