package devserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Roles, from most to least privileged.
var roleRank = map[string]int{"owner": 5, "admin": 4, "member": 3, "annotator": 2, "viewer": 1}

// KeyFileName is the file in DataDir (mode 0600) that holds the first-start
// organization and its keys.
const KeyFileName = "keys.json"

// keyFile is the JSON content of KeyFileName.
type keyFile struct {
	OrganizationID   string `json:"organization_id"`
	OrganizationName string `json:"organization_name"`
	AdminKey         string `json:"admin_key"`
	MemberKey        string `json:"member_key"`
}

// Server is a local Pictograph: an API listener and a storage listener over
// one data directory. Create it with New, then Start; Close stops it.
type Server struct {
	opts   Options
	log    *slog.Logger
	st     *store
	blobs  *blobStore
	secret []byte // HMAC key of signed URLs; immutable after New

	defaultOrg, adminKey, memberKey string // immutable after New

	faults atomic.Pointer[Faults]
	stats  counters

	mu                 sync.Mutex // guards apiSrv, storageSrv, apiURL, storageURL, started, closed
	apiSrv, storageSrv *http.Server
	apiURL, storageURL string
	started, closed    bool

	budgetMu sync.Mutex // guards budgets
	budgets  map[[32]byte]*budget

	idemMu       sync.Mutex // guards idemInflight
	idemInflight map[string]*idemSlot

	buildCtx    context.Context // export builds run under it; Close cancels it
	stopBuilds  context.CancelFunc
	builds      sync.WaitGroup // export builds in flight
	buildSem    chan struct{}  // bounds the builds that run at once
	buildMu     sync.Mutex     // guards buildCancel and buildsStopped
	buildCancel map[string]context.CancelFunc
	// buildsStopped is set by Close: no build starts after it.
	buildsStopped bool
}

// New opens (or creates) the data directory and its database. On first
// start it creates an organization with an admin and a member key and saves
// them in DataDir/keys.json (0600). It does not listen: call Start.
func New(ctx context.Context, opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devserver: create the data directory: %w", err)
	}
	blobs, err := newBlobStore(filepath.Join(opts.DataDir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	dbPath := filepath.Join(opts.DataDir, "pictograph.db")
	st, err := openStore(ctx, dbPath)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		os.Chmod(p, 0o600)
	}
	s := &Server{
		opts: opts, log: opts.Logger, st: st, blobs: blobs,
		budgets: map[[32]byte]*budget{}, idemInflight: map[string]*idemSlot{},
		buildSem: make(chan struct{}, maxConcurrentBuilds), buildCancel: map[string]context.CancelFunc{},
	}
	s.buildCtx, s.stopBuilds = context.WithCancel(context.Background())
	s.faults.Store(&Faults{
		APILatency: opts.APILatency, StorageLatency: opts.StorageLatency,
		StorageBandwidth: opts.StorageBandwidth, FailRate: opts.FailRate,
		TruncateRate: opts.TruncateRate, URLTTL: opts.URLTTL, ExportDelay: opts.ExportDelay,
		ExportFailRate: opts.ExportFailRate,
	})
	if err := s.init(ctx); err != nil {
		st.close()
		return nil, fmt.Errorf("devserver: %w", err)
	}
	return s, nil
}

// init loads or creates the signing secret, the default organization and
// its keys, and removes blobs that deleted datasets left behind.
func (s *Server) init(ctx context.Context) error {
	secretHex, ok, err := s.st.getMeta(ctx, "url_secret")
	if err != nil {
		return err
	}
	orgID, _, err := s.st.getMeta(ctx, "default_org")
	if err != nil {
		return err
	}
	keyPath := filepath.Join(s.opts.DataDir, KeyFileName)
	now := time.Now()
	if !ok {
		secret := make([]byte, 32)
		rand.Read(secret)
		secretHex = hex.EncodeToString(secret)
		kf := keyFile{
			OrganizationID: uuid.NewString(), OrganizationName: "Local Organization",
			AdminKey: s.opts.AdminKey, MemberKey: s.opts.MemberKey,
		}
		if kf.AdminKey == "" {
			kf.AdminKey = newKey()
		}
		if kf.MemberKey == "" {
			kf.MemberKey = newKey()
		}
		err := s.st.tx(ctx, func(tx *sql.Tx) error {
			if err := insertOrg(ctx, tx, orgRow{id: kf.OrganizationID, name: kf.OrganizationName, plan: "enterprise"}, now); err != nil {
				return err
			}
			if err := insertKey(ctx, tx, hashKey(kf.AdminKey), kf.OrganizationID, "admin", now); err != nil {
				return err
			}
			if err := insertKey(ctx, tx, hashKey(kf.MemberKey), kf.OrganizationID, "member", now); err != nil {
				return err
			}
			if err := setMeta(ctx, tx, "default_org", kf.OrganizationID); err != nil {
				return err
			}
			return setMeta(ctx, tx, "url_secret", secretHex)
		})
		if err != nil {
			return fmt.Errorf("first start: %w", err)
		}
		if err := writeKeyFile(keyPath, kf); err != nil {
			return err
		}
		orgID = kf.OrganizationID
		s.adminKey, s.memberKey = kf.AdminKey, kf.MemberKey
		s.log.Info("devserver: first start: created organization and keys", "organization", orgID, "key_file", keyPath)
	} else {
		var kf keyFile
		if b, err := os.ReadFile(keyPath); err == nil {
			if err := json.Unmarshal(b, &kf); err != nil {
				return fmt.Errorf("read %s: %w", keyPath, err)
			}
		}
		s.adminKey, s.memberKey = kf.AdminKey, kf.MemberKey
		err := s.st.tx(ctx, func(tx *sql.Tx) error {
			for _, k := range []struct{ key, role string }{{s.opts.AdminKey, "admin"}, {s.opts.MemberKey, "member"}} {
				if k.key == "" {
					continue
				}
				if err := insertKey(ctx, tx, hashKey(k.key), orgID, k.role, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("add configured keys: %w", err)
		}
		if s.opts.AdminKey != "" {
			s.adminKey = s.opts.AdminKey
		}
		if s.opts.MemberKey != "" {
			s.memberKey = s.opts.MemberKey
		}
	}
	s.defaultOrg = orgID
	s.secret, err = hex.DecodeString(secretHex)
	if err != nil {
		return fmt.Errorf("decode url secret: %w", err)
	}
	orphans, err := s.st.collectGarbage(ctx)
	if err != nil {
		return err
	}
	for _, b := range orphans {
		if err := s.blobs.remove(b); err != nil {
			s.log.Warn("devserver: remove orphan blob", "err", err)
		}
	}
	return nil
}

func writeKeyFile(path string, kf keyFile) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode key file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

func newKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "pk_live_" + hex.EncodeToString(b)
}

// newID is a UUIDv7 (time-ordered), so that the unique index on ids grows
// at its end and bulk inserts stay fast.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Start listens on the API and storage addresses and serves in goroutines.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("devserver: Start after Close")
	}
	if s.started {
		return errors.New("devserver: already started")
	}
	apiLn, err := net.Listen("tcp", s.opts.APIAddr)
	if err != nil {
		return fmt.Errorf("devserver: listen on API address: %w", err)
	}
	storageLn, err := net.Listen("tcp", s.opts.StorageAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("devserver: listen on storage address: %w", err)
	}
	s.apiURL = "http://" + apiLn.Addr().String()
	s.storageURL = "http://" + storageLn.Addr().String()
	s.apiSrv = &http.Server{Handler: s.apiHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.storageSrv = &http.Server{Handler: s.storageHandler(), ReadHeaderTimeout: 10 * time.Second}
	for _, p := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{s.apiSrv, apiLn}, {s.storageSrv, storageLn}} {
		go func() {
			if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("devserver: serve", "addr", p.ln.Addr().String(), "err", err)
			}
		}()
	}
	s.started = true
	s.log.Info("devserver: listening", "api", s.apiURL, "storage", s.storageURL)
	if err := s.resumeBuilds(s.buildCtx); err != nil {
		s.log.Error("devserver: resume export builds", "err", err)
	}
	return nil
}

// APIURL is the API's base URL, e.g. "http://127.0.0.1:34567" (routes are
// under /api/v1/developer). Empty before Start.
func (s *Server) APIURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiURL
}

// StorageURL is the storage host's base URL. Empty before Start.
func (s *Server) StorageURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.storageURL
}

// Close stops both listeners (waiting up to 5 s for requests in flight),
// stops the export builds (an unfinished one is built again on the next
// Start) and closes the database. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srvs := []*http.Server{s.apiSrv, s.storageSrv}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range srvs {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, srv.Close())
		}
	}
	s.buildMu.Lock()
	s.buildsStopped = true
	s.buildMu.Unlock()
	s.stopBuilds()
	s.builds.Wait()
	errs = append(errs, s.st.close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("devserver: close: %w", err)
	}
	return nil
}

// DefaultOrg is the id of the organization made on first start.
func (s *Server) DefaultOrg() string { return s.defaultOrg }

// AdminKey is the default organization's admin key (from Options or the
// key file).
func (s *Server) AdminKey() string { return s.adminKey }

// MemberKey is the default organization's member key.
func (s *Server) MemberKey() string { return s.memberKey }

// KeyFile is the path of the 0600 file holding the first-start keys.
func (s *Server) KeyFile() string { return filepath.Join(s.opts.DataDir, KeyFileName) }

// CreateOrganization adds an organization (plan "enterprise") and returns
// its id.
func (s *Server) CreateOrganization(ctx context.Context, name string) (string, error) {
	id := uuid.NewString()
	err := s.st.tx(ctx, func(tx *sql.Tx) error {
		return insertOrg(ctx, tx, orgRow{id: id, name: name, plan: "enterprise"}, time.Now())
	})
	if err != nil {
		return "", fmt.Errorf("devserver: create organization: %w", err)
	}
	return id, nil
}

// CreateKey adds a random key with role (owner, admin, member, annotator or
// viewer) to the organization and returns it.
func (s *Server) CreateKey(ctx context.Context, orgID, role string) (string, error) {
	if _, ok := roleRank[role]; !ok {
		return "", fmt.Errorf("devserver: create key: unknown role %q: %w", role, ErrInvalid)
	}
	if _, err := s.st.org(ctx, orgID); err != nil {
		return "", fmt.Errorf("devserver: create key: %w", err)
	}
	key := newKey()
	err := s.st.tx(ctx, func(tx *sql.Tx) error { return insertKey(ctx, tx, hashKey(key), orgID, role, time.Now()) })
	if err != nil {
		return "", fmt.Errorf("devserver: create key: %w", err)
	}
	return key, nil
}

// SetFaults replaces the fault injection in force. Invalid values (rates
// outside [0, 1], negative durations) are clamped to the nearest valid one.
func (s *Server) SetFaults(f Faults) {
	f.APILatency = max(f.APILatency, 0)
	f.StorageLatency = max(f.StorageLatency, 0)
	f.StorageStall = max(f.StorageStall, 0)
	f.StorageBandwidth = max(f.StorageBandwidth, 0)
	f.FailRate = min(max(f.FailRate, 0), 1)
	f.TruncateRate = min(max(f.TruncateRate, 0), 1)
	f.ExportFailRate = min(max(f.ExportFailRate, 0), 1)
	if f.URLTTL == 0 {
		f.URLTTL = s.opts.URLTTL
	}
	if f.ExportDelay == 0 {
		f.ExportDelay = s.opts.ExportDelay
	}
	s.faults.Store(&f)
}

// Faults returns the fault injection in force.
func (s *Server) Faults() Faults { return *s.faults.Load() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// ResetStats sets every counter to zero.
func (s *Server) ResetStats() { s.stats.reset() }
