package client

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// The real service is written in Python: its timestamps may lack a zone
// ("2024-05-01T12:00:00.123456", read as UTC) or use a space for the "T",
// and a class may be a bare name. These decoders accept those forms; the
// encoders are unchanged.

// UnmarshalJSON decodes a Dataset, tolerating Python timestamps.
func (d *Dataset) UnmarshalJSON(b []byte) error {
	type plain Dataset
	aux := struct {
		*plain
		CreatedAt flexTime `json:"created_at"`
		UpdatedAt flexTime `json:"updated_at"`
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.CreatedAt, d.UpdatedAt = time.Time(aux.CreatedAt), time.Time(aux.UpdatedAt)
	return nil
}

// UnmarshalJSON decodes an Image, tolerating Python timestamps.
func (img *Image) UnmarshalJSON(b []byte) error {
	type plain Image
	aux := struct {
		*plain
		CreatedAt flexTime `json:"created_at"`
	}{plain: (*plain)(img)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	img.CreatedAt = time.Time(aux.CreatedAt)
	return nil
}

// UnmarshalJSON decodes a Class object, or a bare string as its name.
func (cl *Class) UnmarshalJSON(b []byte) error {
	var name string
	if json.Unmarshal(b, &name) == nil {
		*cl = Class{Name: name}
		return nil
	}
	type plain Class
	return json.Unmarshal(b, (*plain)(cl))
}

// flexTime is a timestamp in any ISO-8601 form Python emits, a Unix time in
// seconds, or null. An unreadable value is the zero time rather than an
// error: one odd timestamp must not make a whole listing unreadable.
type flexTime time.Time

var flexLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

func (t *flexTime) UnmarshalJSON(b []byte) error {
	*t = flexTime{}
	b = bytes.TrimSpace(b)
	if isNull(b) {
		return nil
	}
	var secs float64
	if json.Unmarshal(b, &secs) == nil {
		if !math.IsInf(secs, 0) && !math.IsNaN(secs) {
			*t = flexTime(time.Unix(0, int64(secs*1e9)).UTC())
		}
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	s = strings.Replace(strings.TrimSpace(s), " ", "T", 1)
	for _, layout := range flexLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			*t = flexTime(v)
			return nil
		}
	}
	return nil
}
