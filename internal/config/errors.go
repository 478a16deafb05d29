package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// ErrNoConfig is returned (wrapped) by Load when the config file does not
// exist. Callers that can run without a config branch on it with errors.Is;
// every other failure is a bad config.
var ErrNoConfig = errors.New("no config file")

// ErrInvalid matches, with errors.Is, every error Parse, Load and Validate
// return for a config that exists but is wrong. Each such error is a
// *FieldError; there may be several, joined with errors.Join.
var ErrInvalid = errors.New("invalid config")

// FieldError is one problem in a config file: where it is and what is wrong.
// Its text has the form "file:line: key.path: message", the way compilers
// report errors, so editors can jump to it.
type FieldError struct {
	File string // the name the config was loaded under
	Line int    // 1-based; 0 when unknown (a config built in code)
	Path string // key path such as providers[0].pools[1].labels[2].memory; "" for the whole file
	Msg  string
	Err  error // the underlying parse error, if any
}

func (e *FieldError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if loc != "" {
		loc += ": "
	}
	if e.Path == "" {
		return loc + e.Msg
	}
	return loc + e.Path + ": " + e.Msg
}

// Is reports that every FieldError is an ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors returns the FieldErrors in err, in order: the leaves of an
// errors.Join tree as Parse, Load and Validate build it.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// errorList collects FieldErrors for one file.
type errorList struct {
	file  string
	lines map[string]int // key path -> line, from the decoder
	errs  []*FieldError
	warns []*FieldError // problems that do not make the config invalid
}

// warn records a warning at a key path.
func (l *errorList) warn(path string, format string, args ...any) {
	l.warns = append(l.warns, &FieldError{File: l.file, Line: l.lineOf(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// at reports a problem at a key path, finding its line from the paths the
// decoder saw (or the nearest enclosing one).
func (l *errorList) at(path string, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{File: l.file, Line: l.lineOf(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// atLine reports a problem at a known line.
func (l *errorList) atLine(line int, path string, err error, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{File: l.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...), Err: err})
}

func (l *errorList) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := l.lines[p]; ok {
			return n
		}
	}
	return 0
}

// err returns the errors in line order, joined; nil if there are none.
func (l *errorList) err() error {
	sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// parentPath strips the last element of a key path: "a.b[2]" -> "a.b",
// "a.b" -> "a", "a" -> "".
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
