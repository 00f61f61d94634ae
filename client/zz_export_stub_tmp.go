package client

// TEMPORARY: replaced by the contract branch.
type CreateExportRequest struct {
	DatasetName     string
	Name            string
	Format          string
	IncludeImages   bool
	ClassFilter     []string
	StatusFilter    string
	OrganizeBySplit *bool
}

type Export struct {
	ID, DatasetID, DatasetName, Name, Format, Status, ErrorMessage, DownloadURL string
	FileSize                                                                    int64
	ImageCount, AnnotationCount                                                 int
}
