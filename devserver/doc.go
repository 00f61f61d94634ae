// Package devserver is a local, API-compatible Pictograph server: the backend
// of `pictofs serve`, of the demo and of every test.
//
// It owns everything a hosted Pictograph would hold for pictofs: SQLite
// metadata (organizations, API keys with roles, datasets, images,
// annotations, exports, idempotency records), a content-addressed blob store
// on disk, HMAC-signed storage URLs served on a separate storage listener
// (another host, as in production), the hourly request budget per key, the
// export builds, the demo dataset generator, folder import, and fault
// injection (latency, bandwidth, injected 503s, truncated bodies, short URL
// lifetimes, slow and failing export builds).
//
// It must not know anything about the client, the cache, the prefetcher or
// the filesystem: its code imports nothing of this module, and its tests
// only the contract's golden documents and generic test helpers
// (internal/testenv/golden, internal/testenv/testkit).
// Its wire types (wire.go, exports.go) are its own, and its tests check
// every answer against the golden documents in internal/testenv/golden/docs,
// which package client's tests read too: the two implementations of the
// contract can only agree through the wire format.
//
// # The contract, and the answers the devserver picks
//
// It speaks docs/pictograph-api.md (the contract reconstructed from the
// official SDK) and, where the contract leaves a question open, gives these
// answers (a client must accept the others too):
//
//   - The download listing omits directory_path and, for an image without
//     annotations, annotation_url; /images/ sends a pagination object; an
//     unknown status_filter is a 400; signed URLs live Options.URLTTL (1 h).
//   - GET /annotations/{image_id}/file answers exactly
//     {"image": filename, "annotations": [...]} followed by a newline.
//   - Roles (§8): creating and updating (datasets, uploads, registers,
//     exports) needs member; saving annotations, one image or in bulk,
//     needs annotator (the contract leaves it open: annotating is that
//     role's job); archiving or deleting an image, deleting annotations,
//     deleting a dataset and deleting exports need admin. Reading needs any
//     role.
//   - Saving annotations takes exactly {"annotations": [...]}: any other
//     top-level key, any unknown key in an annotation ("class", "label", the
//     shorthand "bbox": [...]), a class the dataset does not have, an
//     unknown type or a missing or malformed geometry is a 422
//     validation_error (not a 400). A missing id is generated; a polygon
//     without bounding_box gets the box of its points; the image's status
//     never changes. The same rules hold for the Go API (AddImage,
//     SetAnnotations), the demo and folder import (whose datasets take the
//     classes their sidecar files use), so nothing is stored that a save
//     would refuse.
//   - POST /annotations/bulk answers
//     {"saved": [{image_id, previous_count, new_count, status}],
//     "failed": [{image_id, error}]}; bulk-register and bulk-upload-url
//     answer as in the contract. Over 500 images (200 saves) is a 422.
//   - A duplicate filename in a directory is a 400 "already exists" at
//     upload-url and at register (in bulk: an item of failed).
//   - DELETE /images/{dataset}/{image_path} archives: the image leaves every
//     listing (include_images, /images/, the download listing) and the
//     dataset's image_count, completed_image_count and total_size, and counts
//     in archived_image_count; it is no longer reachable by path (by id it
//     still is), and its name may be taken again. ?permanent=true deletes the
//     image (the live one first, else an archived one). DELETE
//     /datasets/{dataset} deletes a dataset whatever it holds, archived
//     images and exports included: a client that must not delete a dataset
//     holding images has to check image_count + archived_image_count itself.
//   - Exports: POST /exports/ (without the slash: a 307 to it, as FastAPI
//     answers) needs include_images; a duplicate name in the dataset is a 409
//     conflict; status_filter "all" and "in_progress" are taken and build an
//     empty export, as on the service; class_filter names must be classes of
//     the dataset. The formats pictograph and coco are built; the other
//     formats of the contract are a 422 unsupported_format ("not supported by
//     the devserver"), unknown ones a 422 validation_error. error_message,
//     file_size, image_count, annotation_count and expires_at are null until
//     the build ends; download_url is present, freshly signed, only on a
//     completed export. GET /exports/{x}/download of an export that is not
//     completed is a 409 export_not_ready. DELETE answers {"data": {id, name,
//     deleted}}; bulk-delete answers {succeeded, not_found, count} without a
//     data wrapper. GET /exports/ is newest first, 20 per page by default,
//     capped at Options.ExportListCap (100) with has_more. expires_at is
//     completion + 7 days, and is not enforced.
//   - An export build is pending for the first third of the export delay
//     (Options.ExportDelay, `--export-delay`, default 3 s), then processing,
//     then completed once the delay has passed and the ZIP is written, or
//     failed with an error_message (Options.ExportFailRate,
//     `--export-fail-rate`). It reads one SQLite snapshot, taken when it
//     starts processing, and streams the ZIP into the blob store, so that a
//     later edit is not in it and a dataset of any size is built in bounded
//     memory. At most two builds run at once. A build that a stop
//     interrupted is built again on the next start.
//
// # The pictograph export layout (an assumption)
//
// The layout of the service's pictograph ZIP is not documented anywhere
// public (§10 knows only that it has .json members and that
// organize_by_split adds top-level split folders). The devserver writes:
//
//	annotations/<directory_path without outer slashes>/<filename>.json
//	annotations/<filename>.json                  (an image at the root "/")
//	images/<directory_path without outer slashes>/<filename>   (include_images)
//
// and with organize_by_split everything under <split>/, one of train, val,
// test or unassigned. Each annotations member holds exactly the bytes that
// GET /annotations/{image_id}/file answered for that image when the export
// was built (with a class_filter: that document without the other
// classes); members are stored, not deflated (the COCO annotations.json
// is deflated: a reader must take both methods). Why this one: the official SDK's download writes one
// <filename>.json per image holding exactly the per-image document, keeping
// the directories, and §10 says a pictograph ZIP has .json members; a
// per-image layout is the one a reader can match exactly (by directory and
// filename), and anything it cannot match falls back to the per-image
// route. Member names are the server's data: they hold whatever a filename
// holds, "..", control characters and duplicates included.
//
// The coco format writes annotations.json (one per split with
// organize_by_split) in the COCO object-detection format: image ids and
// category ids count from 1, in listing and class order; file_name is the
// image path without the leading slash; boxes, polygons (as segmentation)
// and keypoints are converted, polylines are left out.
//
// # Signed URLs
//
// Signed storage URLs look like
//
//	{storage}/o/{image_id}?expires={unix seconds}&signature={base64url HMAC-SHA256}
//
// with the MAC, keyed by a per-data-dir secret, over "GET\n/o/{image_id}\n{expires}";
// upload URLs are the same with PUT and /u/{upload_id}, and an export's ZIP
// is GET /x/{export_id}. Expired or tampered URLs answer 403; GETs support
// Range.
package devserver
