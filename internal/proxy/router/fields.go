package router

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ConfigError is a compile error located at a field path inside the route
// configuration, for example "virtual_hosts[1].routes[3].match.safe_regex.regex".
type ConfigError struct {
	// Path is the field path, in proto field names, relative to the
	// RouteConfiguration.
	Path string
	// Err says what is wrong and, where it helps, what to do.
	Err error
}

func (e *ConfigError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// errAt returns a ConfigError at path.
func errAt(path, format string, args ...any) error {
	return &ConfigError{Path: path, Err: fmt.Errorf(format, args...)}
}

// field joins a field name to a path.
func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index appends an element index to a path of a repeated field.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// checkFields rejects any populated field of m that is not in allowed. Walking
// the populated fields (rather than testing the known ones) means a field
// added to the Envoy API later is rejected too, instead of being silently
// ignored.
func checkFields(m proto.Message, path string, allowed ...string) error {
	if m == nil {
		return nil
	}
	var err error
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name := string(fd.Name())
		if slices.Contains(allowed, name) {
			return true
		}
		err = errAt(field(path, name), "not supported by weft-proxy; remove the field")
		return false
	})
	return err
}

// duration converts a protobuf Duration, rejecting invalid or negative ones.
func duration(d *durationpb.Duration, path string) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, errAt(path, "invalid duration: %v", err)
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, errAt(path, "duration must not be negative, got %v", v)
	}
	return v, nil
}
