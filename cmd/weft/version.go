package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `weft version` prints.
type versionInfo struct {
	// Version is the module version ("(devel)" for a build from a
	// checkout).
	Version string `json:"version"`
	// Commit is the VCS revision, with "-dirty" when the checkout had
	// changes; CommitTime its time ("" when the build has no VCS data).
	Commit     string `json:"commit"`
	CommitTime string `json:"commitTime,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

// newVersionCommand builds `weft version`.
func newVersionCommand(s streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print weft's version, commit and Go version",
		Long: `Version prints the version of this weft binary, the commit it was built from
(from the Go build information: builds from a git checkout record it) and the
Go version that built it.`,
		Example: `  weft version
  weft version -o json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			v := buildVersion()
			if output != "table" {
				return writeStructured(s.out, output, v)
			}
			fmt.Fprintf(s.out, "weft %s\ncommit: %s\n", v.Version, v.Commit)
			if v.CommitTime != "" {
				fmt.Fprintf(s.out, "commit time: %s\n", v.CommitTime)
			}
			_, err := fmt.Fprintf(s.out, "go: %s %s\n", v.GoVersion, v.Platform)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// buildVersion reads the build information.
func buildVersion() versionInfo {
	v := versionInfo{Version: "unknown", Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && v.Commit != "unknown" {
		v.Commit += "-dirty"
	}
	return v
}
