package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// streams are where a command writes.
type streams struct {
	out, err io.Writer
}

// exitError ends the program with a status after the command has already
// said why (on stdout or stderr).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes the CLI with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand(streams{out: stdout, err: stderr})
	cmd.SetArgs(args)
	err := cmd.Execute()
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintln(stderr, "weft:", err)
		return 1
	}
}

// newRootCommand builds the weft command tree. Each subcommand lives in
// its own file and is added here.
func newRootCommand(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "weft",
		Short: "weft is the command line of the weft service mesh",
		Long: "weft is the command line of the weft service mesh: weft-control (the control plane,\n" +
			"reading Istio configuration) and weft-proxy (the Envoy-compatible data plane).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(s.out)
	root.SetErr(s.err)
	// `weft completion bash|zsh|fish|powershell` prints a shell completion
	// script (cobra's command, with its instructions in --help).
	root.AddCommand(newAnalyzeCommand(s))
	root.AddCommand(newTokenCommand(s))
	root.AddCommand(newProxyStatusCommand(s))
	root.AddCommand(newProxyConfigCommand(s))
	root.AddCommand(newDashboardCommand(s))
	root.AddCommand(newDemoAppCommand(s))
	root.AddCommand(newUpCommand(s))      // up.go
	root.AddCommand(newApplyCommand(s))   // apply.go
	root.AddCommand(newVersionCommand(s)) // version.go
	root.AddCommand(newIPTablesCommand(s))
	root.AddCommand(newKubeInjectCommand(s)) // kubeinject.go
	root.AddCommand(newInstallCommand(s))    // install.go
	root.AddCommand(newUninstallCommand(s))  // install.go
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = "  source <(weft completion bash)                        # this shell\n" +
				"  weft completion bash > /etc/bash_completion.d/weft      # every new shell\n" +
				"  weft completion zsh > \"${fpath[1]}/_weft\""
		}
	}
	return root
}
