package ca

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of the CA directory.
const (
	RootCertFile = "root-cert.pem"
	RootKeyFile  = "root-key.pem"
	TokenKeyFile = "token-key"
)

// DefaultDir returns the default CA directory, weft/ca under the user's
// configuration directory (os.UserConfigDir: $XDG_CONFIG_HOME or
// ~/.config on Linux, ~/Library/Application Support on macOS,
// %AppData% on Windows).
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no default CA directory (%w): pass --ca-dir", err)
	}
	return filepath.Join(d, "weft", "ca"), nil
}

// createExclusive writes data to path with mode perm, atomically and only
// if path does not exist yet: it writes a temporary file in the same
// directory and links it into place, so that a concurrent writer or a
// crash never leaves a partial file. It returns an error wrapping
// fs.ErrExist when path already exists.
func createExclusive(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Link(name, path)
}

// readPrivate reads a secret file of the CA directory, refusing it when
// other users may read it (as ssh does with private keys).
func readPrivate(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %v: a secret must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}

// exists reports whether path exists (errors other than "does not exist"
// count as existing, so that they surface when the file is read).
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
