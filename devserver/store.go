package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go database/sql driver "sqlite"
)

// store is the SQLite metadata. Writes go through w, a pool of one
// connection (SQLite has one writer); reads go through r, which in WAL mode
// runs beside the writer. Both pools are safe for concurrent use.
type store struct {
	w, r *sql.DB

	// cursorMu guards gens and cursors: the keyset cursors that let a page
	// that continues the previous one (offset = previous offset + its
	// length) seek in the index instead of counting past offset rows.
	cursorMu sync.Mutex
	gens     map[int64]uint64 // dataset seq → write generation
	cursors  map[cursorKey]cursorPos
}

// cursorKey names the position after the first offset rows of a listing.
type cursorKey struct {
	dsSeq  int64
	gen    uint64
	filter string
	offset int
}

// cursorPos is a row's place in (directory_path, filename, seq) order.
type cursorPos struct {
	dir, filename string
	seq           int64
}

const maxCursors = 4096

// touch bumps a dataset's write generation, retiring its cursors. Writers
// call it before and after they change the dataset's images.
func (st *store) touch(dsSeq int64) {
	st.cursorMu.Lock()
	st.gens[dsSeq]++
	st.cursorMu.Unlock()
}

func (st *store) generation(dsSeq int64) uint64 {
	st.cursorMu.Lock()
	defer st.cursorMu.Unlock()
	return st.gens[dsSeq]
}

func (st *store) cursor(k cursorKey) (cursorPos, bool) {
	st.cursorMu.Lock()
	defer st.cursorMu.Unlock()
	p, ok := st.cursors[k]
	return p, ok
}

func (st *store) saveCursor(k cursorKey, p cursorPos) {
	st.cursorMu.Lock()
	defer st.cursorMu.Unlock()
	if len(st.cursors) >= maxCursors {
		for old := range st.cursors { // evict an arbitrary tenth
			delete(st.cursors, old)
			if len(st.cursors) < maxCursors*9/10 {
				break
			}
		}
	}
	st.cursors[k] = p
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	plan       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
	hash       BLOB PRIMARY KEY,
	org_id     TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS datasets (
	seq              INTEGER PRIMARY KEY AUTOINCREMENT,
	id               TEXT NOT NULL UNIQUE,
	org_id           TEXT NOT NULL,
	name             TEXT NOT NULL,
	description      TEXT NOT NULL DEFAULT '',
	readme           TEXT NOT NULL DEFAULT '',
	annotation_types TEXT NOT NULL DEFAULT '[]',
	classes          TEXT NOT NULL DEFAULT '[]',
	image_count      INTEGER NOT NULL DEFAULT 0,
	completed_count  INTEGER NOT NULL DEFAULT 0,
	archived_count   INTEGER NOT NULL DEFAULT 0,
	total_size       INTEGER NOT NULL DEFAULT 0,
	is_public        INTEGER NOT NULL DEFAULT 0,
	is_archived      INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	UNIQUE (org_id, name)
);
CREATE TABLE IF NOT EXISTS images (
	seq              INTEGER PRIMARY KEY,
	id               TEXT NOT NULL UNIQUE,
	dataset_seq      INTEGER NOT NULL,
	directory_path   TEXT NOT NULL,
	filename         TEXT NOT NULL,
	status           TEXT NOT NULL,
	split            TEXT,
	annotation_count INTEGER NOT NULL DEFAULT 0,
	file_size        INTEGER NOT NULL,
	width            INTEGER NOT NULL,
	height           INTEGER NOT NULL,
	content_type     TEXT NOT NULL,
	tags             TEXT NOT NULL DEFAULT '[]',
	is_archived      INTEGER NOT NULL DEFAULT 0,
	blob             BLOB NOT NULL,
	created_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_order  ON images (dataset_seq, directory_path, filename, seq);
CREATE INDEX IF NOT EXISTS images_status ON images (dataset_seq, status, directory_path, filename, seq);
CREATE TABLE IF NOT EXISTS annotations (
	image_seq INTEGER PRIMARY KEY,
	doc       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
	id             TEXT PRIMARY KEY,
	dataset_seq    INTEGER NOT NULL,
	directory_path TEXT NOT NULL,
	filename       TEXT NOT NULL,
	content_type   TEXT NOT NULL,
	blob           BLOB,
	file_size      INTEGER NOT NULL DEFAULT 0,
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_target ON uploads (dataset_seq, directory_path, filename);
CREATE TABLE IF NOT EXISTS idempotency (
	key_hash    BLOB NOT NULL,
	idem_key    TEXT NOT NULL,
	fingerprint BLOB NOT NULL,
	status      INTEGER NOT NULL,
	body        BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (key_hash, idem_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gc_candidates (
	blob BLOB PRIMARY KEY
) WITHOUT ROWID;
`

func openStore(ctx context.Context, path string) (*store, error) {
	dsn := (&url.URL{Scheme: "file", Path: path}).String() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=cache_size(-65536)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if _, err := w.ExecContext(ctx, schema+exportsSchema); err != nil {
		w.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database for reading: %w", err)
	}
	n := max(4, 2*runtime.NumCPU())
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	return &store{w: w, r: r, gens: map[int64]uint64{}, cursors: map[cursorKey]cursorPos{}}, nil
}

func (st *store) close() error {
	return errors.Join(st.r.Close(), st.w.Close())
}

// tx runs fn in a write transaction.
func (st *store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func (st *store) getMeta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := st.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read meta %s: %w", key, err)
	}
	return v, true, nil
}

func setMeta(ctx context.Context, tx *sql.Tx, key, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write meta %s: %w", key, err)
	}
	return nil
}

// ---- organizations and keys ----

type orgRow struct {
	id, name, plan string
}

func insertOrg(ctx context.Context, tx *sql.Tx, o orgRow, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, plan, created_at) VALUES (?, ?, ?, ?)`,
		o.id, o.name, o.plan, micros(now))
	if err != nil {
		return fmt.Errorf("insert organization: %w", err)
	}
	return nil
}

func insertKey(ctx context.Context, tx *sql.Tx, hash []byte, orgID, role string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (hash, org_id, role, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (hash) DO NOTHING`, hash, orgID, role, micros(now))
	if err != nil {
		return fmt.Errorf("insert key: %w", err)
	}
	return nil
}

func (st *store) org(ctx context.Context, id string) (orgRow, error) {
	o := orgRow{id: id}
	err := st.r.QueryRowContext(ctx, `SELECT name, plan FROM orgs WHERE id = ?`, id).Scan(&o.name, &o.plan)
	if errors.Is(err, sql.ErrNoRows) {
		return o, notFound("organization %q not found", id)
	}
	if err != nil {
		return o, fmt.Errorf("read organization: %w", err)
	}
	return o, nil
}

// keyByHash returns the stored hash, organization and role of a key hash.
func (st *store) keyByHash(ctx context.Context, hash []byte) (stored []byte, orgID, role string, err error) {
	err = st.r.QueryRowContext(ctx, `SELECT hash, org_id, role FROM api_keys WHERE hash = ?`, hash).
		Scan(&stored, &orgID, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", "", nil
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("read key: %w", err)
	}
	return stored, orgID, role, nil
}

// ---- datasets ----

type datasetRow struct {
	seq             int64
	id, orgID, name string
	description     string
	readme          string
	annotationTypes string // JSON
	classes         string // JSON
	imageCount      int
	completedCount  int
	archivedCount   int
	totalSize       int64
	isPublic        bool
	isArchived      bool
	createdAt       int64
	updatedAt       int64
}

const datasetCols = `seq, id, org_id, name, description, readme, annotation_types, classes, image_count,
	completed_count, archived_count, total_size, is_public, is_archived, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanDataset(s scanner) (*datasetRow, error) {
	var d datasetRow
	err := s.Scan(&d.seq, &d.id, &d.orgID, &d.name, &d.description, &d.readme, &d.annotationTypes,
		&d.classes, &d.imageCount, &d.completedCount, &d.archivedCount, &d.totalSize, &d.isPublic,
		&d.isArchived, &d.createdAt, &d.updatedAt)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// dataset finds a dataset of orgID by name or, failing that, by UUID.
func (st *store) dataset(ctx context.Context, q querier, orgID, ref string) (*datasetRow, error) {
	d, err := scanDataset(q.QueryRowContext(ctx,
		`SELECT `+datasetCols+` FROM datasets WHERE org_id = ? AND name = ?`, orgID, ref))
	if errors.Is(err, sql.ErrNoRows) {
		d, err = scanDataset(q.QueryRowContext(ctx,
			`SELECT `+datasetCols+` FROM datasets WHERE org_id = ? AND id = ?`, orgID, ref))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("dataset %q not found", ref)
	}
	if err != nil {
		return nil, fmt.Errorf("read dataset: %w", err)
	}
	return d, nil
}

// datasetBySeq reads a dataset by its row number.
func (st *store) datasetBySeq(ctx context.Context, q querier, seq int64) (*datasetRow, error) {
	d, err := scanDataset(q.QueryRowContext(ctx, `SELECT `+datasetCols+` FROM datasets WHERE seq = ?`, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("dataset not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read dataset: %w", err)
	}
	return d, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (st *store) countDatasets(ctx context.Context, orgID string) (int, error) {
	var n int
	if err := st.r.QueryRowContext(ctx, `SELECT count(*) FROM datasets WHERE org_id = ?`, orgID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count datasets: %w", err)
	}
	return n, nil
}

func (st *store) listDatasets(ctx context.Context, orgID string, limit, offset int) ([]*datasetRow, error) {
	rows, err := st.r.QueryContext(ctx, `SELECT `+datasetCols+` FROM datasets WHERE org_id = ?
		ORDER BY seq LIMIT ? OFFSET ?`, orgID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	defer rows.Close()
	var out []*datasetRow
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, fmt.Errorf("scan dataset: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	return out, nil
}

// insertDataset creates d (its seq is set) unless the name is taken (409)
// or the organization is at maxPerOrg datasets (402).
func (st *store) insertDataset(ctx context.Context, d *datasetRow, maxPerOrg int) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM datasets WHERE org_id = ?`, d.orgID).Scan(&n); err != nil {
			return fmt.Errorf("count datasets: %w", err)
		}
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM datasets WHERE org_id = ? AND name = ?`,
			d.orgID, d.name).Scan(&taken); err != nil {
			return fmt.Errorf("check dataset name: %w", err)
		}
		if taken > 0 {
			return conflict("dataset %q already exists", d.name)
		}
		if maxPerOrg > 0 && n >= maxPerOrg {
			return apiErr(http.StatusPaymentRequired, "insufficient_credits",
				"your plan allows %d datasets; delete one or upgrade", maxPerOrg)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO datasets (id, org_id, name, description, readme,
			annotation_types, classes, is_public, is_archived, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?)`,
			d.id, d.orgID, d.name, d.description, d.readme, d.annotationTypes, d.classes, d.createdAt, d.updatedAt)
		if err != nil {
			return fmt.Errorf("insert dataset: %w", err)
		}
		d.seq, err = res.LastInsertId()
		return err
	})
}

// updateDataset applies the non-nil changes to the dataset ref of orgID.
func (st *store) updateDataset(ctx context.Context, orgID, ref string, newName, description, readme *string, now time.Time) (*datasetRow, error) {
	var out *datasetRow
	err := st.tx(ctx, func(tx *sql.Tx) error {
		d, err := st.dataset(ctx, tx, orgID, ref)
		if err != nil {
			return err
		}
		if newName != nil && *newName != d.name {
			var taken int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM datasets WHERE org_id = ? AND name = ?`,
				orgID, *newName).Scan(&taken); err != nil {
				return fmt.Errorf("check dataset name: %w", err)
			}
			if taken > 0 {
				return conflict("dataset %q already exists", *newName)
			}
			d.name = *newName
		}
		if description != nil {
			d.description = *description
		}
		if readme != nil {
			d.readme = *readme
		}
		d.updatedAt = micros(now)
		_, err = tx.ExecContext(ctx, `UPDATE datasets SET name = ?, description = ?, readme = ?, updated_at = ?
			WHERE seq = ?`, d.name, d.description, d.readme, d.updatedAt, d.seq)
		if err != nil {
			return fmt.Errorf("update dataset: %w", err)
		}
		out = d
		return nil
	})
	return out, err
}

// deleteDataset removes the dataset, its images and annotations. The blobs
// become garbage-collection candidates, removed at the next start (so that
// no running request races with the removal of a blob file).
func (st *store) deleteDataset(ctx context.Context, orgID, ref string) (*datasetRow, int, error) {
	var out *datasetRow
	var deleted int
	err := st.tx(ctx, func(tx *sql.Tx) error {
		d, err := st.dataset(ctx, tx, orgID, ref)
		if err != nil {
			return err
		}
		stmts := []string{
			`INSERT OR IGNORE INTO gc_candidates (blob) SELECT DISTINCT blob FROM images WHERE dataset_seq = ?`,
			`INSERT OR IGNORE INTO gc_candidates (blob) SELECT DISTINCT blob FROM uploads WHERE dataset_seq = ? AND blob IS NOT NULL`,
			`DELETE FROM annotations WHERE image_seq IN (SELECT seq FROM images WHERE dataset_seq = ?)`,
			`DELETE FROM uploads WHERE dataset_seq = ?`,
			`INSERT OR IGNORE INTO gc_candidates (blob) SELECT DISTINCT blob FROM exports WHERE dataset_seq = ? AND blob IS NOT NULL`,
			`DELETE FROM exports WHERE dataset_seq = ?`,
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s, d.seq); err != nil {
				return fmt.Errorf("delete dataset: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM images WHERE dataset_seq = ?`, d.seq)
		if err != nil {
			return fmt.Errorf("delete images: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted = int(n)
		if _, err := tx.ExecContext(ctx, `DELETE FROM datasets WHERE seq = ?`, d.seq); err != nil {
			return fmt.Errorf("delete dataset: %w", err)
		}
		out = d
		return nil
	})
	if out != nil {
		st.touch(out.seq)
	}
	return out, deleted, err
}

// collectGarbage returns the candidate blobs that no image, upload or export refers
// to any more, and forgets all candidates. Call it when nothing else runs.
func (st *store) collectGarbage(ctx context.Context) ([][]byte, error) {
	var orphans [][]byte
	err := st.tx(ctx, func(tx *sql.Tx) error {
		now := micros(time.Now())
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO gc_candidates (blob)
			SELECT blob FROM uploads WHERE expires_at < ? AND blob IS NOT NULL`, now-(24*time.Hour).Microseconds()); err != nil {
			return fmt.Errorf("collect expired uploads: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE expires_at < ?`, now-(24*time.Hour).Microseconds()); err != nil {
			return fmt.Errorf("delete expired uploads: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT blob FROM gc_candidates c
			WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.blob = c.blob)
			AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.blob = c.blob)
			AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.blob = c.blob)`)
		if err != nil {
			return fmt.Errorf("find orphan blobs: %w", err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return fmt.Errorf("scan orphan blob: %w", err)
			}
			orphans = append(orphans, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find orphan blobs: %w", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM gc_candidates`)
		return err
	})
	return orphans, err
}

// ---- images ----

type imageRow struct {
	seq             int64
	dsSeq           int64
	id              string
	datasetID       string
	dir, filename   string
	status          string
	split           sql.NullString
	annotationCount int
	fileSize        int64
	width, height   int
	contentType     string
	tags            string // JSON
	isArchived      bool
	blob            []byte
	createdAt       int64
}

const imageCols = `i.seq, i.dataset_seq, i.id, d.id, i.directory_path, i.filename, i.status, i.split, i.annotation_count,
	i.file_size, i.width, i.height, i.content_type, i.tags, i.is_archived, i.blob, i.created_at`

func scanImage(s scanner) (*imageRow, error) {
	var im imageRow
	err := s.Scan(&im.seq, &im.dsSeq, &im.id, &im.datasetID, &im.dir, &im.filename, &im.status, &im.split,
		&im.annotationCount, &im.fileSize, &im.width, &im.height, &im.contentType, &im.tags,
		&im.isArchived, &im.blob, &im.createdAt)
	if err != nil {
		return nil, err
	}
	return &im, nil
}

// imageFilter narrows an image listing; empty fields match everything.
type imageFilter struct {
	dir      *string
	status   string
	filename *string
}

func (f imageFilter) where() (string, []any) {
	var sb strings.Builder
	var args []any
	if f.status != "" {
		sb.WriteString(` AND i.status = ?`)
		args = append(args, f.status)
	}
	if f.dir != nil {
		sb.WriteString(` AND i.directory_path = ?`)
		args = append(args, *f.dir)
	}
	if f.filename != nil {
		sb.WriteString(` AND i.filename = ?`)
		args = append(args, *f.filename)
	}
	return sb.String(), args
}

func (f imageFilter) empty() bool { return f.dir == nil && f.status == "" && f.filename == nil }

// key identifies the filter in cursor keys.
func (f imageFilter) key() string {
	k := f.status
	if f.dir != nil {
		k += "\x00d" + *f.dir
	}
	if f.filename != nil {
		k += "\x00f" + *f.filename
	}
	return k
}

// listImages returns a page of a dataset's images that are not archived, in
// (directory_path, filename, seq) order. A page that starts where an earlier one ended seeks
// by keyset; others count past offset rows in the index.
func (st *store) listImages(ctx context.Context, d *datasetRow, f imageFilter, limit, offset int) ([]*imageRow, error) {
	where, args := f.where()
	index := "images_order"
	if f.status != "" {
		index = "images_status"
	}
	gen := st.generation(d.seq)
	key := cursorKey{dsSeq: d.seq, gen: gen, filter: f.key(), offset: offset}
	q := `SELECT ` + imageCols + ` FROM images i INDEXED BY ` + index + ` JOIN datasets d ON d.seq = i.dataset_seq
		WHERE i.dataset_seq = ? AND i.is_archived = 0` + where
	all := append([]any{d.seq}, args...)
	if pos, ok := st.cursor(key); ok && offset > 0 {
		q += ` AND (i.directory_path, i.filename, i.seq) > (?, ?, ?)
			ORDER BY i.directory_path, i.filename, i.seq LIMIT ?`
		all = append(all, pos.dir, pos.filename, pos.seq, limit)
	} else {
		q += ` ORDER BY i.directory_path, i.filename, i.seq LIMIT ? OFFSET ?`
		all = append(all, limit, offset)
	}
	rows, err := st.r.QueryContext(ctx, q, all...)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	defer rows.Close()
	out := make([]*imageRow, 0, min(limit, 1024))
	for rows.Next() {
		im, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("scan image: %w", err)
		}
		out = append(out, im)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	if n := len(out); n > 0 && st.generation(d.seq) == gen {
		last := out[n-1]
		key.offset = offset + n
		st.saveCursor(key, cursorPos{dir: last.dir, filename: last.filename, seq: last.seq})
	}
	return out, nil
}

func (st *store) countImages(ctx context.Context, d *datasetRow, f imageFilter) (int, error) {
	switch {
	case f.empty():
		return d.imageCount, nil
	case f.dir == nil && f.filename == nil && f.status == "complete":
		return d.completedCount, nil
	}
	where, args := f.where()
	var n int
	err := st.r.QueryRowContext(ctx, `SELECT count(*) FROM images i WHERE i.dataset_seq = ? AND i.is_archived = 0`+where,
		append([]any{d.seq}, args...)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count images: %w", err)
	}
	return n, nil
}

// imageByID finds an image of orgID by UUID.
func (st *store) imageByID(ctx context.Context, orgID, id string) (*imageRow, error) {
	im, err := scanImage(st.r.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images i
		JOIN datasets d ON d.seq = i.dataset_seq WHERE i.id = ? AND d.org_id = ?`, id, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("image %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	return im, nil
}

// imageByIDAnyOrg finds an image by UUID for the storage host, which knows
// no organization: the signature is its authorization.
func (st *store) imageByIDAnyOrg(ctx context.Context, id string) (*imageRow, error) {
	im, err := scanImage(st.r.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images i
		JOIN datasets d ON d.seq = i.dataset_seq WHERE i.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("object not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	return im, nil
}

// imageByPath finds the first image (in listing order) of d at
// dir/filename that is not archived; with archived, an archived one when no
// other is there.
func (st *store) imageByPath(ctx context.Context, d *datasetRow, dir, filename string, archived bool) (*imageRow, error) {
	im, err := scanImage(st.r.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images i
		JOIN datasets d ON d.seq = i.dataset_seq
		WHERE i.dataset_seq = ? AND i.directory_path = ? AND i.filename = ? AND (i.is_archived = 0 OR ?)
		ORDER BY i.is_archived, i.seq LIMIT 1`,
		d.seq, dir, filename, archived))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("image %q not found in %q of dataset %q", filename, dir, d.name)
	}
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	return im, nil
}

func (st *store) annotationDoc(ctx context.Context, imageSeq int64) (string, error) {
	var doc string
	err := st.r.QueryRowContext(ctx, `SELECT doc FROM annotations WHERE image_seq = ?`, imageSeq).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return "[]", nil
	}
	if err != nil {
		return "", fmt.Errorf("read annotations: %w", err)
	}
	return doc, nil
}

// newImage is an image to insert; annotations is the JSON array of its
// annotations ("" for none).
type newImage struct {
	imageRow
	annotations string
}

// insertImages adds images to dataset seq in one transaction and keeps the
// dataset's counters. With checkDup, an image whose directory already holds
// its filename is refused (400 "already exists").
func (st *store) insertImages(ctx context.Context, dsSeq int64, imgs []*newImage, checkDup bool, now time.Time) error {
	st.touch(dsSeq)
	defer st.touch(dsSeq)
	return st.tx(ctx, func(tx *sql.Tx) error { return insertImagesTx(ctx, tx, dsSeq, imgs, checkDup, now) })
}

func insertImagesTx(ctx context.Context, tx *sql.Tx, dsSeq int64, imgs []*newImage, checkDup bool, now time.Time) error {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO images (id, dataset_seq, directory_path, filename, status,
		split, annotation_count, file_size, width, height, content_type, tags, is_archived, blob, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare image insert: %w", err)
	}
	defer ins.Close()
	insAnn, err := tx.PrepareContext(ctx, `INSERT INTO annotations (image_seq, doc) VALUES (?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare annotation insert: %w", err)
	}
	defer insAnn.Close()
	var count, completed, archived int
	var size int64
	for _, im := range imgs {
		if checkDup {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM images WHERE dataset_seq = ?
				AND directory_path = ? AND filename = ? AND is_archived = 0`, dsSeq, im.dir, im.filename).Scan(&n); err != nil {
				return fmt.Errorf("check duplicate image: %w", err)
			}
			if n > 0 {
				return apiErr(http.StatusBadRequest, "already_exists",
					"image %q already exists in directory %q", im.filename, im.dir)
			}
		}
		res, err := ins.ExecContext(ctx, im.id, dsSeq, im.dir, im.filename, im.status, im.split,
			im.annotationCount, im.fileSize, im.width, im.height, im.contentType, im.tags, im.isArchived,
			im.blob, im.createdAt)
		if err != nil {
			return fmt.Errorf("insert image: %w", err)
		}
		im.seq, _ = res.LastInsertId()
		if im.annotations != "" {
			if _, err := insAnn.ExecContext(ctx, im.seq, im.annotations); err != nil {
				return fmt.Errorf("insert annotations: %w", err)
			}
		}
		if im.isArchived {
			archived++
			continue
		}
		count++
		size += im.fileSize
		if im.status == "complete" {
			completed++
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE datasets SET image_count = image_count + ?,
		completed_count = completed_count + ?, archived_count = archived_count + ?,
		total_size = total_size + ?, updated_at = ? WHERE seq = ?`,
		count, completed, archived, size, micros(now), dsSeq)
	if err != nil {
		return fmt.Errorf("update dataset counters: %w", err)
	}
	return nil
}

// setAnnotations replaces an image's annotations with doc (a JSON array
// of count annotations) and returns how many it had. The image's status
// never changes.
func (st *store) setAnnotations(ctx context.Context, im *imageRow, doc string, count int) (int, error) {
	st.touch(im.dsSeq)
	defer st.touch(im.dsSeq)
	var previous int
	err := st.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT annotation_count FROM images WHERE seq = ?`, im.seq).Scan(&previous); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("image %q not found", im.id)
			}
			return fmt.Errorf("read image: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO annotations (image_seq, doc) VALUES (?, ?)
			ON CONFLICT (image_seq) DO UPDATE SET doc = excluded.doc`, im.seq, doc); err != nil {
			return fmt.Errorf("save annotations: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE images SET annotation_count = ? WHERE seq = ?`, count, im.seq); err != nil {
			return fmt.Errorf("update image: %w", err)
		}
		im.annotationCount = count
		return nil
	})
	return previous, err
}

// archiveImage marks an image archived: it leaves the listings and the
// dataset's image_count, completed_image_count and total_size, and counts
// in archived_image_count.
func (st *store) archiveImage(ctx context.Context, im *imageRow, now time.Time) error {
	st.touch(im.dsSeq)
	defer st.touch(im.dsSeq)
	return st.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE images SET is_archived = 1 WHERE seq = ? AND is_archived = 0`, im.seq)
		if err != nil {
			return fmt.Errorf("archive image: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("image %q not found", im.filename)
		}
		completed := 0
		if im.status == "complete" {
			completed = 1
		}
		_, err = tx.ExecContext(ctx, `UPDATE datasets SET image_count = image_count - 1,
			completed_count = completed_count - ?, archived_count = archived_count + 1,
			total_size = total_size - ?, updated_at = ? WHERE seq = ?`, completed, im.fileSize, micros(now), im.dsSeq)
		if err != nil {
			return fmt.Errorf("update dataset counters: %w", err)
		}
		im.isArchived = true
		return nil
	})
}

// removeImage deletes an image and its annotations for good; its blob
// becomes a garbage-collection candidate.
func (st *store) removeImage(ctx context.Context, im *imageRow, now time.Time) error {
	st.touch(im.dsSeq)
	defer st.touch(im.dsSeq)
	return st.tx(ctx, func(tx *sql.Tx) error {
		var archived bool
		var status string
		var size int64
		err := tx.QueryRowContext(ctx, `SELECT is_archived, status, file_size FROM images WHERE seq = ?`, im.seq).
			Scan(&archived, &status, &size)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("image %q not found", im.filename)
		}
		if err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		for _, q := range []string{
			`INSERT OR IGNORE INTO gc_candidates (blob) SELECT blob FROM images WHERE seq = ?`,
			`DELETE FROM annotations WHERE image_seq = ?`,
			`DELETE FROM images WHERE seq = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, im.seq); err != nil {
				return fmt.Errorf("delete image: %w", err)
			}
		}
		var count, completed, archivedN int
		switch {
		case archived:
			archivedN, size = 1, 0
		case status == "complete":
			count, completed = 1, 1
		default:
			count = 1
		}
		_, err = tx.ExecContext(ctx, `UPDATE datasets SET image_count = image_count - ?,
			completed_count = completed_count - ?, archived_count = archived_count - ?,
			total_size = total_size - ?, updated_at = ? WHERE seq = ?`, count, completed, archivedN, size, micros(now), im.dsSeq)
		if err != nil {
			return fmt.Errorf("update dataset counters: %w", err)
		}
		return nil
	})
}

// setStatus changes an image's status and keeps its dataset's counters.
func (st *store) setStatus(ctx context.Context, orgID, imageID, status string, now time.Time) error {
	var dsSeq int64
	defer func() { st.touch(dsSeq) }()
	return st.tx(ctx, func(tx *sql.Tx) error {
		var seq int64
		var old string
		err := tx.QueryRowContext(ctx, `SELECT i.seq, i.dataset_seq, i.status FROM images i
			JOIN datasets d ON d.seq = i.dataset_seq WHERE i.id = ? AND d.org_id = ?`, imageID, orgID).
			Scan(&seq, &dsSeq, &old)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("image %q not found", imageID)
		}
		if err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE images SET status = ? WHERE seq = ?`, status, seq); err != nil {
			return fmt.Errorf("update status: %w", err)
		}
		delta := 0
		if old == "complete" {
			delta--
		}
		if status == "complete" {
			delta++
		}
		_, err = tx.ExecContext(ctx, `UPDATE datasets SET completed_count = completed_count + ?, updated_at = ?
			WHERE seq = ?`, delta, micros(now), dsSeq)
		return err
	})
}

// ---- uploads ----

type uploadRow struct {
	id          string
	dsSeq       int64
	dir         string
	filename    string
	contentType string
	blob        []byte
	fileSize    int64
	expiresAt   int64
}

// insertUploads records pending uploads in one transaction.
func (st *store) insertUploads(ctx context.Context, us []*uploadRow, now time.Time) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		for _, u := range us {
			_, err := tx.ExecContext(ctx, `INSERT INTO uploads (id, dataset_seq, directory_path, filename,
				content_type, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				u.id, u.dsSeq, u.dir, u.filename, u.contentType, micros(now), u.expiresAt)
			if err != nil {
				return fmt.Errorf("insert upload: %w", err)
			}
		}
		return nil
	})
}

func (st *store) upload(ctx context.Context, id string) (*uploadRow, error) {
	u := uploadRow{id: id}
	err := st.r.QueryRowContext(ctx, `SELECT dataset_seq, directory_path, filename, content_type, blob,
		file_size, expires_at FROM uploads WHERE id = ?`, id).
		Scan(&u.dsSeq, &u.dir, &u.filename, &u.contentType, &u.blob, &u.fileSize, &u.expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("upload not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	return &u, nil
}

func (st *store) completeUpload(ctx context.Context, id string, blob []byte, size int64) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE uploads SET blob = ?, file_size = ? WHERE id = ?`, blob, size, id)
		if err != nil {
			return fmt.Errorf("complete upload: %w", err)
		}
		return nil
	})
}

// registerUpload turns the newest completed upload for dataset/dir/filename
// into an image (im gets the blob and size) and deletes the upload.
func (st *store) registerUpload(ctx context.Context, dsSeq int64, im *newImage, wantSize int64, now time.Time) error {
	st.touch(dsSeq)
	defer st.touch(dsSeq)
	return st.tx(ctx, func(tx *sql.Tx) error {
		var uploadID string
		var blob []byte
		var size int64
		err := tx.QueryRowContext(ctx, `SELECT id, blob, file_size FROM uploads
			WHERE dataset_seq = ? AND directory_path = ? AND filename = ? AND blob IS NOT NULL
			ORDER BY created_at DESC LIMIT 1`, dsSeq, im.dir, im.filename).Scan(&uploadID, &blob, &size)
		if errors.Is(err, sql.ErrNoRows) {
			return badRequest("no uploaded object for %q in directory %q: PUT it to its upload_url first",
				im.filename, im.dir)
		}
		if err != nil {
			return fmt.Errorf("find upload: %w", err)
		}
		if wantSize > 0 && wantSize != size {
			return badRequest("file_size %d does not match the uploaded object's %d bytes", wantSize, size)
		}
		im.blob, im.fileSize = blob, size
		if err := insertImagesTx(ctx, tx, dsSeq, []*newImage{im}, true, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, uploadID)
		return err
	})
}

// ---- idempotency ----

type idemRecord struct {
	fingerprint []byte
	status      int
	body        []byte
}

func (st *store) idempotent(ctx context.Context, keyHash []byte, idemKey string, since time.Time) (*idemRecord, error) {
	var rec idemRecord
	err := st.r.QueryRowContext(ctx, `SELECT fingerprint, status, body FROM idempotency
		WHERE key_hash = ? AND idem_key = ? AND created_at >= ?`, keyHash, idemKey, micros(since)).
		Scan(&rec.fingerprint, &rec.status, &rec.body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency record: %w", err)
	}
	return &rec, nil
}

func (st *store) saveIdempotent(ctx context.Context, keyHash []byte, idemKey string, rec *idemRecord, now, expired time.Time) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency WHERE created_at < ?`, micros(expired)); err != nil {
			return fmt.Errorf("purge idempotency records: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO idempotency (key_hash, idem_key, fingerprint, status, body, created_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_hash, idem_key) DO UPDATE SET
			fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body,
			created_at = excluded.created_at`, keyHash, idemKey, rec.fingerprint, rec.status, rec.body, micros(now))
		if err != nil {
			return fmt.Errorf("save idempotency record: %w", err)
		}
		return nil
	})
}
