package units

import "testing"

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"10GiB", 10 << 30, true},
		{"500MiB", 500 << 20, true},
		{"1.5G", 3 << 29, true},
		{"2KB", 2000, true},
		{"1048576", 1 << 20, true},
		{"64m", 64 << 20, true},
		{"lots", 0, false},
		{"-1GiB", 0, false},
		{"0", 0, true},
		{"", 0, false},
		{"MB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
