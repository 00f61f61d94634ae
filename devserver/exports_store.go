package devserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const exportsSchema = `
CREATE TABLE IF NOT EXISTS exports (
	seq               INTEGER PRIMARY KEY AUTOINCREMENT,
	id                TEXT NOT NULL UNIQUE,
	org_id            TEXT NOT NULL,
	dataset_seq       INTEGER NOT NULL,
	name              TEXT NOT NULL,
	format            TEXT NOT NULL,
	include_images    INTEGER NOT NULL,
	class_filter      TEXT,
	status_filter     TEXT,
	organize_by_split INTEGER NOT NULL,
	status            TEXT NOT NULL,
	error_message     TEXT,
	fail              INTEGER NOT NULL,
	blob              BLOB,
	file_size         INTEGER,
	image_count       INTEGER,
	annotation_count  INTEGER,
	created_at        INTEGER NOT NULL,
	completed_at      INTEGER,
	expires_at        INTEGER,
	UNIQUE (dataset_seq, name)
);
CREATE INDEX IF NOT EXISTS exports_org ON exports (org_id, seq);
`

// exportRow is one export and the name and id of its dataset.
type exportRow struct {
	seq             int64
	id, orgID       string
	dsSeq           int64
	datasetID       string
	datasetName     string
	name, format    string
	includeImages   bool
	classFilter     sql.NullString // JSON list
	statusFilter    sql.NullString
	organizeBySplit bool
	status          string
	errorMessage    sql.NullString
	fail            bool // decided at creation: the build fails
	blob            []byte
	fileSize        sql.NullInt64
	imageCount      sql.NullInt64
	annotationCount sql.NullInt64
	createdAt       int64
	completedAt     sql.NullInt64
	expiresAt       sql.NullInt64
}

const exportCols = `e.seq, e.id, e.org_id, e.dataset_seq, d.id, d.name, e.name, e.format, e.include_images,
	e.class_filter, e.status_filter, e.organize_by_split, e.status, e.error_message, e.fail, e.blob, e.file_size,
	e.image_count, e.annotation_count, e.created_at, e.completed_at, e.expires_at`

const exportFrom = ` FROM exports e JOIN datasets d ON d.seq = e.dataset_seq`

func scanExport(s scanner) (*exportRow, error) {
	var e exportRow
	err := s.Scan(&e.seq, &e.id, &e.orgID, &e.dsSeq, &e.datasetID, &e.datasetName, &e.name, &e.format,
		&e.includeImages, &e.classFilter, &e.statusFilter, &e.organizeBySplit, &e.status, &e.errorMessage,
		&e.fail, &e.blob, &e.fileSize, &e.imageCount, &e.annotationCount, &e.createdAt, &e.completedAt, &e.expiresAt)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *exportRow) classes() []string {
	var out []string
	if e.classFilter.Valid {
		json.Unmarshal([]byte(e.classFilter.String), &out)
	}
	return out
}

// insertExport creates e (its seq is set) unless its dataset already has
// an export of that name (409).
func (st *store) insertExport(ctx context.Context, e *exportRow) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM exports WHERE dataset_seq = ? AND name = ?`,
			e.dsSeq, e.name).Scan(&taken); err != nil {
			return fmt.Errorf("check export name: %w", err)
		}
		if taken > 0 {
			return conflict("export %q already exists in dataset %q", e.name, e.datasetName)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO exports (id, org_id, dataset_seq, name, format, include_images,
			class_filter, status_filter, organize_by_split, status, fail, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.id, e.orgID, e.dsSeq, e.name, e.format, e.includeImages, e.classFilter, e.statusFilter,
			e.organizeBySplit, e.status, e.fail, e.createdAt)
		if err != nil {
			return fmt.Errorf("insert export: %w", err)
		}
		e.seq, err = res.LastInsertId()
		return err
	})
}

func exportNotFound(ref string) error {
	return notFound("export %q not found", ref)
}

// exportByID finds an export of orgID by id; with orgID "" of any
// organization (for the storage host, whose signature is its authority).
func (st *store) exportByID(ctx context.Context, orgID, id string) (*exportRow, error) {
	q := `SELECT ` + exportCols + exportFrom + ` WHERE e.id = ? AND (e.org_id = ? OR ? = '')`
	e, err := scanExport(st.r.QueryRowContext(ctx, q, id, orgID, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, exportNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("read export: %w", err)
	}
	return e, nil
}

// exportInDataset finds an export of dataset d by name, or failing that by id.
func (st *store) exportInDataset(ctx context.Context, d *datasetRow, ref string) (*exportRow, error) {
	e, err := scanExport(st.r.QueryRowContext(ctx, `SELECT `+exportCols+exportFrom+` WHERE e.dataset_seq = ? AND e.name = ?`, d.seq, ref))
	if errors.Is(err, sql.ErrNoRows) {
		e, err = scanExport(st.r.QueryRowContext(ctx, `SELECT `+exportCols+exportFrom+` WHERE e.dataset_seq = ? AND e.id = ?`, d.seq, ref))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("export %q not found in dataset %q", ref, d.name)
	}
	if err != nil {
		return nil, fmt.Errorf("read export: %w", err)
	}
	return e, nil
}

// exportFilter narrows the export listing; zero fields match everything.
type exportFilter struct {
	dsSeq  int64
	status string
}

func (f exportFilter) where() (string, []any) {
	var where string
	var args []any
	if f.dsSeq != 0 {
		where += ` AND e.dataset_seq = ?`
		args = append(args, f.dsSeq)
	}
	if f.status != "" {
		where += ` AND e.status = ?`
		args = append(args, f.status)
	}
	return where, args
}

// listExports returns a page of orgID's exports, newest first, and how
// many there are in all.
func (st *store) listExports(ctx context.Context, orgID string, f exportFilter, limit, offset int) ([]*exportRow, int, error) {
	where, args := f.where()
	var total int
	if err := st.r.QueryRowContext(ctx, `SELECT count(*) FROM exports e WHERE e.org_id = ?`+where,
		append([]any{orgID}, args...)...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count exports: %w", err)
	}
	rows, err := st.r.QueryContext(ctx, `SELECT `+exportCols+exportFrom+` WHERE e.org_id = ?`+where+
		` ORDER BY e.seq DESC LIMIT ? OFFSET ?`, append(append([]any{orgID}, args...), limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list exports: %w", err)
	}
	defer rows.Close()
	var out []*exportRow
	for rows.Next() {
		e, err := scanExport(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("scan export: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list exports: %w", err)
	}
	return out, total, nil
}

// unfinishedExports are the exports whose build has not ended (after a
// restart: to build again).
func (st *store) unfinishedExports(ctx context.Context) ([]*exportRow, error) {
	rows, err := st.r.QueryContext(ctx, `SELECT `+exportCols+exportFrom+` WHERE e.status IN ('pending', 'processing') ORDER BY e.seq`)
	if err != nil {
		return nil, fmt.Errorf("list unfinished exports: %w", err)
	}
	defer rows.Close()
	var out []*exportRow
	for rows.Next() {
		e, err := scanExport(rows)
		if err != nil {
			return nil, fmt.Errorf("scan export: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// setExportStatus moves an export from one of the statuses in from to
// status; false when it is gone or in another status.
func (st *store) setExportStatus(ctx context.Context, id, status string, from ...string) (bool, error) {
	var ok bool
	err := st.tx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT status FROM exports WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read export: %w", err)
		}
		for _, f := range from {
			if cur == f {
				ok = true
			}
		}
		if !ok {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE exports SET status = ? WHERE id = ?`, status, id)
		return err
	})
	return ok, err
}

// failExport marks a build failed with msg.
func (st *store) failExport(ctx context.Context, id, msg string, now time.Time) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE exports SET status = 'failed', error_message = ?, completed_at = ?
			WHERE id = ? AND status IN ('pending', 'processing')`, msg, micros(now), id)
		return err
	})
}

// builtExport is the outcome of a build.
type builtExport struct {
	blob                    []byte
	size                    int64
	images, annotationCount int
}

// completeExport records a finished build. When the export is gone (deleted
// while it was built), its blob becomes a garbage-collection candidate.
func (st *store) completeExport(ctx context.Context, id string, b builtExport, now, expires time.Time) error {
	return st.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE exports SET status = 'completed', blob = ?, file_size = ?,
			image_count = ?, annotation_count = ?, completed_at = ?, expires_at = ?
			WHERE id = ? AND status = 'processing'`,
			b.blob, b.size, b.images, b.annotationCount, micros(now), micros(expires), id)
		if err != nil {
			return fmt.Errorf("complete export: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO gc_candidates (blob) VALUES (?)`, b.blob)
		}
		return err
	})
}

// deleteExport removes an export; its blob becomes a garbage-collection
// candidate.
func (st *store) deleteExport(ctx context.Context, id string) (bool, error) {
	var deleted bool
	err := st.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO gc_candidates (blob)
			SELECT blob FROM exports WHERE id = ? AND blob IS NOT NULL`, id); err != nil {
			return fmt.Errorf("delete export: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM exports WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete export: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted = n > 0
		return nil
	})
	return deleted, err
}

// exportSource is one image of a build: its row and its annotation doc.
type exportSource struct {
	id, dir, filename, split string
	width, height            int
	blob                     []byte
	doc                      string // JSON array
}

// eachExportImage calls fn for every image of the build's snapshot (tx), in
// listing order, optionally of one split only.
func eachExportImage(ctx context.Context, tx *sql.Tx, e *exportRow, split string, fn func(src *exportSource) error) error {
	q := `SELECT i.id, i.directory_path, i.filename, COALESCE(i.split, 'unassigned'), i.width, i.height, i.blob,
		COALESCE(a.doc, '[]') FROM images i INDEXED BY images_order LEFT JOIN annotations a ON a.image_seq = i.seq
		WHERE i.dataset_seq = ? AND i.is_archived = 0`
	args := []any{e.dsSeq}
	if e.statusFilter.Valid {
		// "all" and "in_progress" match no image, as on the service (§10).
		q += ` AND i.status = ?`
		args = append(args, e.statusFilter.String)
	}
	if split != "" {
		q += ` AND COALESCE(i.split, 'unassigned') = ?`
		args = append(args, split)
	}
	rows, err := tx.QueryContext(ctx, q+` ORDER BY i.directory_path, i.filename, i.seq`, args...)
	if err != nil {
		return fmt.Errorf("read export images: %w", err)
	}
	defer rows.Close()
	var src exportSource
	for rows.Next() {
		if err := rows.Scan(&src.id, &src.dir, &src.filename, &src.split, &src.width, &src.height, &src.blob, &src.doc); err != nil {
			return fmt.Errorf("scan export image: %w", err)
		}
		if err := fn(&src); err != nil {
			return err
		}
	}
	return rows.Err()
}

// exportSplits are the splits of the build's snapshot that hold images.
func exportSplits(ctx context.Context, tx *sql.Tx, e *exportRow) ([]string, error) {
	var out []string
	for _, sp := range []string{"train", "val", "test", "unassigned"} {
		found := false
		err := eachExportImage(ctx, tx, e, sp, func(*exportSource) error {
			found = true
			return errStopIteration
		})
		if err != nil && !errors.Is(err, errStopIteration) {
			return nil, err
		}
		if found {
			out = append(out, sp)
		}
	}
	return out, nil
}

var errStopIteration = errors.New("stop")
