package zk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The znodes hold JSON objects that several programs read and write: Zuul,
// Nodepool and kubepool. A program that writes a record back must not drop
// or reformat what it did not change, so each record remembers the raw
// members it was decoded from. On encoding, a member whose value is still
// the one decoded is written back byte for byte; changed members are
// written the way Nodepool writes them; members the model does not know are
// kept as they were.

// field binds one JSON member of a record to a Go value. v is a pointer to
// the value, or one of the wrappers below.
type field struct {
	name string
	v    any
}

// record is what every model type embeds to remember its raw members.
type record struct {
	raw  map[string]json.RawMessage // every member as read
	seen map[string][]byte          // known members re-encoded right after decoding
}

// Extra returns the raw JSON of a member the model has no field for (for
// example "id", which Zuul writes into node records), and whether it is set.
func (r *record) Extra(name string) (json.RawMessage, bool) {
	v, ok := r.raw[name]
	return v, ok
}

func (r *record) decode(data []byte, fields []field) error {
	r.raw = map[string]json.RawMessage{}
	r.seen = map[string][]byte{}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, &r.raw); err != nil {
		return err
	}
	if r.raw == nil { // the JSON was null
		r.raw = map[string]json.RawMessage{}
	}
	for _, f := range fields {
		v, ok := r.raw[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, f.v); err != nil {
			return fmt.Errorf("decoding %q: %w", f.name, err)
		}
		enc, err := marshal(f.v)
		if err != nil {
			return fmt.Errorf("re-encoding %q: %w", f.name, err)
		}
		r.seen[f.name] = enc
	}
	return nil
}

func (r *record) encode(fields []field) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.raw)+len(fields))
	for k, v := range r.raw {
		out[k] = v
	}
	for _, f := range fields {
		enc, err := marshal(f.v)
		if err != nil {
			return nil, fmt.Errorf("encoding %q: %w", f.name, err)
		}
		orig, present := r.raw[f.name]
		if o, ok := f.v.(omitter); ok && !present && o.omit() {
			continue
		}
		if present && bytes.Equal(enc, r.seen[f.name]) {
			enc = orig
		}
		out[f.name] = enc
	}
	return marshal(out)
}

// marshal is json.Marshal without HTML escaping, as Python's json.dumps
// writes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// nullString is a string that Nodepool leaves as None when unset: "" is
// written as null and null reads as "".
type nullString struct{ p *string }

func (s nullString) MarshalJSON() ([]byte, error) {
	if *s.p == "" {
		return []byte("null"), nil
	}
	return marshal(*s.p)
}

func (s nullString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s.p = ""
		return nil
	}
	return json.Unmarshal(b, s.p)
}

// omitter is a field that is left out of a record that was not decoded
// with it, when its value says nothing.
type omitter interface{ omit() bool }

// defaultString is a string member that Nodepool writes only when it is
// set, and that reads as def when absent (a node's username: Zuul takes
// "zuul" for a node without one). Unset or def, it is left out of a
// record that did not have it; otherwise it is a nullString.
type defaultString struct {
	p   *string
	def string
}

func (s defaultString) MarshalJSON() ([]byte, error) { return nullString{s.p}.MarshalJSON() }
func (s defaultString) UnmarshalJSON(b []byte) error { return nullString{s.p}.UnmarshalJSON(b) }
func (s defaultString) omit() bool                   { return *s.p == "" || *s.p == s.def }

// nullFloat is a float (a Unix time) that is None when unset.
type nullFloat struct{ p *float64 }

func (f nullFloat) MarshalJSON() ([]byte, error) {
	if *f.p == 0 {
		return []byte("null"), nil
	}
	return marshal(*f.p)
}

func (f nullFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f.p = 0
		return nil
	}
	return json.Unmarshal(b, f.p)
}

// stringList is a list of strings written as [] when empty. Like Nodepool's
// as_list it also reads a single string (old node records have a string
// "type") and null.
type stringList struct{ p *[]string }

func (l stringList) MarshalJSON() ([]byte, error) {
	if *l.p == nil {
		return []byte("[]"), nil
	}
	return marshal(*l.p)
}

func (l stringList) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*l.p = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l.p = nil
		if s != "" {
			*l.p = []string{s}
		}
		return nil
	}
	return json.Unmarshal(b, l.p)
}

// seconds is Node.hold_expiration: Nodepool coerces it to an int and uses 0
// (no expiration) for anything it cannot coerce; unset is None.
type seconds struct{ p *int }

func (s seconds) MarshalJSON() ([]byte, error) {
	if *s.p == 0 {
		return []byte("null"), nil
	}
	return marshal(*s.p)
}

func (s seconds) UnmarshalJSON(b []byte) error {
	*s.p = 0
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case float64:
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			*s.p = int(v)
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			*s.p = n
		}
	}
	return nil
}

// rawValue is a member kept as raw JSON; nil is written as def.
type rawValue struct {
	p   *json.RawMessage
	def string
}

func (r rawValue) MarshalJSON() ([]byte, error) {
	if len(*r.p) == 0 {
		return []byte(r.def), nil
	}
	return *r.p, nil
}

func (r rawValue) UnmarshalJSON(b []byte) error {
	*r.p = append(json.RawMessage(nil), b...)
	return nil
}

// Timestamp converts t to the float seconds since the epoch used by every
// *_time member of the records.
func Timestamp(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// TimeOf converts a *_time member to a time.Time; zero stays zero.
func TimeOf(ts float64) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(frac*1e9))
}
