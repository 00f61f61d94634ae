package catalog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The staging area holds the bytes of files being written through the
// mount: <id>.data, and beside it <id>.json, the sidecar that says what the
// bytes are (dataset, folder, name, content type) and whether the writer
// had closed them. A mount holds an flock on the data file of every file it
// stages, so that mounts sharing one cache never take each other's files,
// and a crashed mount's files are free for the next one (RecoverStaged).
//
// The directory sits in the cache directory under a name blobcache never
// uses (it owns only two-hex-digit shards, "tmp" and its marker files), is
// 0700, and its files 0600.

// stagingVersion is the version of the sidecar format.
const stagingVersion = 1

// sidecar describes one staged file.
type sidecar struct {
	Version   int    `json:"version"`
	Namespace string `json:"namespace"`
	DatasetID string `json:"dataset_id"`
	Dataset   string `json:"dataset"`
	// Annotations is set for a file listed under annotations/.
	Annotations   bool   `json:"annotations,omitempty"`
	DirectoryPath string `json:"directory_path"`
	Name          string `json:"name"`
	// Kind is "image", "document" or "scratch".
	Kind        string `json:"kind"`
	ContentType string `json:"content_type,omitempty"`
	// ImageID is the image whose document a "document" is.
	ImageID string `json:"image_id,omitempty"`
	// Complete is set once the writer closed the file (it is what they
	// meant to upload); a file still open when the process died may be cut
	// short.
	Complete  bool      `json:"complete"`
	CreatedAt time.Time `json:"created_at"`
}

// staging is the staging directory.
type staging struct {
	dir string
}

func openStaging(dir string) (*staging, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	return &staging{dir: dir}, nil
}

// stagedFile is one staged file, locked by this process while it is open.
type stagedFile struct {
	st   *staging
	id   string
	data *os.File
}

func (s *stagedFile) dataPath() string    { return filepath.Join(s.st.dir, s.id+".data") }
func (s *stagedFile) sidecarPath() string { return filepath.Join(s.st.dir, s.id+".json") }

// create makes a new, empty, locked staged file described by sc.
func (st *staging) create(sc sidecar) (*stagedFile, error) {
	var b [12]byte
	rand.Read(b[:])
	s := &stagedFile{st: st, id: hex.EncodeToString(b[:])}
	f, err := os.OpenFile(s.dataPath(), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stage file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(s.dataPath())
		return nil, fmt.Errorf("lock staged file: %w", err)
	}
	s.data = f
	if err := s.writeSidecar(sc); err != nil {
		s.remove()
		return nil, err
	}
	return s, nil
}

// writeSidecar replaces the sidecar atomically.
func (s *stagedFile) writeSidecar(sc sidecar) error {
	sc.Version = stagingVersion
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.sidecarPath() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	if err := os.Rename(tmp, s.sidecarPath()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write sidecar: %w", err)
	}
	return nil
}

// remove deletes the staged file and its sidecar and unlocks it. Open
// readers of the descriptor are not affected until close.
func (s *stagedFile) remove() {
	os.Remove(s.sidecarPath())
	os.Remove(s.dataPath())
	s.close()
}

// close unlocks the staged file and leaves it on disk.
func (s *stagedFile) close() {
	if s.data != nil {
		s.data.Close()
	}
}

// leftover is a staged file found on disk and locked by this process.
type leftover struct {
	*stagedFile
	sc   sidecar
	size int64
}

// leftovers returns the staged files of namespace that no live process
// holds, locked. A data file without a readable sidecar is reported in bad
// (and left alone).
func (st *staging) leftovers(namespace string) (files []*leftover, bad []string) {
	des, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, nil
	}
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".data")
		if !ok || !de.Type().IsRegular() {
			continue
		}
		s := &stagedFile{st: st, id: id}
		f, err := os.OpenFile(s.dataPath(), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // a live mount's
			continue
		}
		s.data = f
		var sc sidecar
		b, err := os.ReadFile(s.sidecarPath())
		if err == nil {
			err = json.Unmarshal(b, &sc)
		}
		if err != nil || sc.Version != stagingVersion {
			bad = append(bad, s.dataPath())
			s.close()
			continue
		}
		if sc.Namespace != namespace {
			s.close()
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			s.close()
			continue
		}
		files = append(files, &leftover{stagedFile: s, sc: sc, size: fi.Size()})
	}
	return files, bad
}
