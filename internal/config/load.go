package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadResult is what one load of the configuration found.
type LoadResult struct {
	// Objects are the valid objects (warnings allowed), sorted by kind,
	// namespace and name.
	Objects []*Object
	// Rejected are the keys of objects that were read but are invalid,
	// sorted: the Store keeps their previous good version in force.
	Rejected []Key
	// Errors are every problem found, errors and warnings, sorted by file,
	// line and document.
	Errors []*Error
	// Files are the configuration files read, in the order read.
	Files []string
	// Incomplete are files (or directories) from which some object could
	// not be identified: a YAML syntax error, a document without kind or
	// name, an unreadable file. The objects they held before cannot be
	// known to be gone, so the Store does not remove them.
	Incomplete []string
}

// Counts returns the number of errors and of warnings.
func (r *LoadResult) Counts() (errs, warnings int) {
	for _, e := range r.Errors {
		if e.Warning {
			warnings++
		} else {
			errs++
		}
	}
	return errs, warnings
}

// HasErrors reports whether any problem is an error (not a warning).
func (r *LoadResult) HasErrors() bool {
	n, _ := r.Counts()
	return n > 0
}

// MeshConfigFile is the name of a directory's mesh configuration (Istio's
// MeshConfig YAML, as weft-control's --mesh-config reads it): `weft up -f
// DIR` reads DIR/mesh.yaml, so LoadDir leaves that one file (at the top of
// the directory only) out of the objects when it is a MeshConfig: a
// mapping with neither apiVersion nor kind. A mesh.yaml of Kubernetes
// objects is read as any other file.
const MeshConfigFile = "mesh.yaml"

// isMeshConfig reports whether a file is a MeshConfig document rather
// than Kubernetes objects: one YAML mapping without apiVersion and kind.
func isMeshConfig(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false // the loader reports it
	}
	var m map[string]any
	if yaml.Unmarshal(data, &m) != nil || m == nil {
		return false
	}
	_, kind := m["kind"]
	_, apiVersion := m["apiVersion"]
	return !kind && !apiVersion
}

// LoadDir reads every *.yaml, *.yml and *.json file below dir (recursively,
// in lexical order, skipping files and directories whose name starts with
// "." and not following symbolic links to directories, and dir's
// MeshConfigFile when it is a MeshConfig), decodes every
// document into istio.io/api objects, validates each with Istio's rules and
// the set with the cross-object checks. Invalid objects and documents are
// reported in the result, never half-applied; the error is for a dir that
// cannot be read at all.
func LoadDir(dir string) (*LoadResult, error) {
	return loadDir(dir, nil)
}

// loadDir is LoadDir with an optional cache of decoded files.
func loadDir(dir string, cache fileCache) (*LoadResult, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("config: %s is not a directory", dir)
	}
	l := loader{cache: cache}
	l.walk(dir)
	cache.prune(l.files)
	return l.result(), nil
}

// LoadFiles is LoadDir for a list of paths, each a file (read whatever its
// name) or a directory (read as LoadDir does); together they form one
// configuration. It is what `weft analyze -f` uses. The error is for a
// path that does not exist.
func LoadFiles(paths ...string) (*LoadResult, error) {
	var l loader
	if err := l.paths(paths); err != nil { // overlay.go
		return nil, err
	}
	return l.result(), nil
}

// loader accumulates the documents of one load.
type loader struct {
	// platform: the hosts a platform defines (zero outside Kubernetes).
	platform   Platform
	cache      fileCache // nil: decode every file
	items      []*loaded
	files      []string
	incomplete []string
	errs       []*Error
}

// isConfigFile reports whether a file name has a configuration extension.
func isConfigFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// isHidden reports whether a file or directory name is hidden.
func isHidden(name string) bool { return strings.HasPrefix(name, ".") && name != "." && name != ".." }

// walk reads the configuration files below dir.
func (l *loader) walk(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			l.unreadable(path, err)
			if d != nil && d.IsDir() && path != dir {
				return fs.SkipDir
			}
			return nil
		}
		if path != dir && isHidden(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isConfigFile(d.Name()) || (path == filepath.Join(dir, MeshConfigFile) && isMeshConfig(path)) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
				return nil // a link to a directory (not followed), or dangling
			}
		}
		l.file(path)
		return nil
	})
}

// file reads and decodes one file.
func (l *loader) file(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		l.unreadable(path, err)
		return
	}
	l.files = append(l.files, path)
	items, incomplete := l.cache.decode(path, data)
	l.items = append(l.items, items...)
	if incomplete {
		l.incomplete = append(l.incomplete, path)
	}
}

// unreadable records a file or directory that could not be read.
func (l *loader) unreadable(path string, err error) {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	l.errs = append(l.errs, &Error{Source: Source{File: path}, Message: fmt.Sprintf("cannot read: %v", err)})
	l.incomplete = append(l.incomplete, path)
}

// result assembles the load: duplicates, cross-object checks, sorting.
func (l *loader) result() *LoadResult {
	crossCheck(dedupe(l.items), l.platform)
	r := &LoadResult{Files: l.files, Incomplete: l.incomplete, Errors: l.errs}
	rejected := map[Key]bool{}
	for _, it := range l.items {
		r.Errors = append(r.Errors, it.errs...)
		switch {
		case it.valid():
			r.Objects = append(r.Objects, it.obj)
		case it.ours && it.identified() && !rejected[it.key] && !isDuplicate(it):
			rejected[it.key] = true
			r.Rejected = append(r.Rejected, it.key)
		}
	}
	sortObjects(r.Objects)
	sort.Slice(r.Rejected, func(i, j int) bool { return keyLess(r.Rejected[i], r.Rejected[j]) })
	sort.SliceStable(r.Errors, func(i, j int) bool {
		a, b := r.Errors[i].Source, r.Errors[j].Source
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Doc != b.Doc {
			return a.Doc < b.Doc
		}
		return a.Line < b.Line
	})
	return r
}

// duplicateMark starts the message of a duplicate definition.
const duplicateMark = "duplicate definition"

// dedupe keeps the first definition of every key (in file order) and
// reports the others; it returns the first definitions that decoded.
func dedupe(items []*loaded) []*loaded {
	first := map[Key]*loaded{}
	var decoded []*loaded
	for _, it := range items {
		if !it.ours || !it.identified() {
			continue
		}
		if f, dup := first[it.key]; dup {
			it.problem("metadata.name", fmt.Sprintf("%s: %s is also defined at %s; the first definition applies", duplicateMark, it.key, f.src), false)
			it.finish()
			it.obj = nil
			continue
		}
		first[it.key] = it
		if it.obj != nil {
			decoded = append(decoded, it)
		}
	}
	return decoded
}

// isDuplicate reports whether an item was rejected as a second definition.
func isDuplicate(it *loaded) bool {
	for _, e := range it.errs {
		if strings.HasPrefix(e.Message, duplicateMark) {
			return true
		}
	}
	return false
}

// keyLess orders keys by kind, namespace, name.
func keyLess(a, b Key) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// sortObjects orders objects by key.
func sortObjects(objs []*Object) {
	sort.Slice(objs, func(i, j int) bool { return keyLess(objs[i].Key(), objs[j].Key()) })
}

// fileCache keeps the decoded documents of each file by content, so that a
// reload after a change decodes only the files that changed (the
// cross-object checks still run on the whole set). It is used by one
// goroutine at a time (the Watcher serializes reloads); a nil cache
// decodes every time.
type fileCache map[string]*cachedFile

// cachedFile is the pristine decoding of one file's content.
type cachedFile struct {
	sum        [sha256.Size]byte
	items      []*loaded
	incomplete bool
}

// decode returns the documents of a file, from the cache when its content
// is unchanged. The items are copies the caller may change.
func (c fileCache) decode(path string, data []byte) ([]*loaded, bool) {
	if c == nil {
		return decodeFile(path, data)
	}
	sum := sha256.Sum256(data)
	e, ok := c[path]
	if !ok || e.sum != sum {
		items, incomplete := decodeFile(path, data)
		for _, it := range items {
			// Only the cross-object checks, which report on
			// VirtualServices, need the YAML tree after decoding; the
			// others' trees would only hold memory (a duplicate
			// definition is then reported at its document's line).
			if it.key.Kind != VirtualService {
				it.node = nil
			}
		}
		e = &cachedFile{sum: sum, items: items, incomplete: incomplete}
		c[path] = e
	}
	out := make([]*loaded, len(e.items))
	for i, it := range e.items {
		out[i] = it.clone()
	}
	return out, e.incomplete
}

// prune forgets the files not read by the last load.
func (c fileCache) prune(files []string) {
	if c == nil {
		return
	}
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		seen[f] = true
	}
	for f := range c {
		if !seen[f] {
			delete(c, f)
		}
	}
}
