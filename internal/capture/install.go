package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Backend is the netfilter userland the rules go through.
type Backend string

// The backends. Auto picks iptables when iptables-restore is installed,
// else nftables (nft).
const (
	Auto     Backend = "auto"
	IPTables Backend = "iptables"
	NFTables Backend = "nftables"
)

// Runner runs a command with stdin and returns its combined output. Tests
// replace it; ExecRunner runs the real tools.
type Runner interface {
	Run(name string, args []string, stdin string) (string, error)
	// LookPath reports whether a program is installed.
	LookPath(name string) bool
}

// ExecRunner runs programs with os/exec.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(name string, args []string, stdin string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// LookPath implements Runner.
func (ExecRunner) LookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// Options configure Install and Cleanup.
type Options struct {
	Backend Backend
	Runner  Runner // nil: ExecRunner
	// DryRun writes what would be applied to Out instead of applying it.
	DryRun bool
	Out    io.Writer
}

func (o *Options) runner() Runner {
	if o.Runner == nil {
		return ExecRunner{}
	}
	return o.Runner
}

// ErrNoBackend is returned when neither iptables-restore nor nft is
// installed.
var ErrNoBackend = errors.New("neither iptables (iptables-restore) nor nftables (nft) is installed: install one (apt-get install iptables, or nftables)")

// Resolve returns the backend to use: o.Backend unless Auto, else the one
// installed (iptables first, as istio-iptables; iptables for a dry run
// on a host with neither).
func (o *Options) Resolve() (Backend, error) {
	r := o.runner()
	switch o.Backend {
	case IPTables, NFTables:
		return o.Backend, nil
	case Auto, "":
		if r.LookPath("iptables-restore") {
			return IPTables, nil
		}
		if r.LookPath("nft") {
			return NFTables, nil
		}
		if o.DryRun {
			return IPTables, nil // printing needs no tool
		}
		return "", ErrNoBackend
	}
	return "", fmt.Errorf("backend %q: want auto, iptables or nftables", o.Backend)
}

// step is one command of an installation or cleanup.
type step struct {
	name  string
	args  []string
	stdin string
	// mayFail is set for cleanup steps that fail when nothing is there.
	mayFail bool
}

// Install removes any previous weft/Istio capture rules, then applies
// cfg's rules with one atomic restore per family (iptables) or one nft
// transaction. With DryRun it prints the commands and their input.
func Install(cfg *Config, o Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := o.Resolve()
	if err != nil {
		return err
	}
	steps := cleanupSteps(b, cfg.Families)
	switch b {
	case IPTables:
		for _, f := range cfg.Families {
			steps = append(steps, step{name: restoreTool(f), args: []string{"--noflush"}, stdin: RenderIPTables(Plan(cfg, []Family{f}))})
		}
	case NFTables:
		steps = append(steps, step{name: "nft", args: []string{"-f", "-"}, stdin: RenderNFT(Plan(cfg, cfg.Families))})
	}
	return o.run(steps)
}

// Cleanup removes the capture rules installed by Install (or by
// istio-iptables: the same chains) for the given families.
func Cleanup(fams []Family, o Options) error {
	b, err := o.Resolve()
	if err != nil {
		return err
	}
	return o.run(cleanupSteps(b, fams))
}

func (o *Options) run(steps []step) error {
	r := o.runner()
	for _, s := range steps {
		if o.DryRun {
			o.print(s)
			continue
		}
		if _, err := r.Run(s.name, s.args, s.stdin); err != nil && !s.mayFail {
			return err
		}
	}
	return nil
}

func (o *Options) print(s step) {
	if o.Out == nil {
		return
	}
	if s.mayFail && s.stdin == "" {
		fmt.Fprintf(o.Out, "# %s %s (may fail: nothing to remove)\n", s.name, strings.Join(s.args, " "))
		return
	}
	fmt.Fprintf(o.Out, "# %s %s\n%s", s.name, strings.Join(s.args, " "), s.stdin)
}

func restoreTool(f Family) string {
	if f == IPv6 {
		return "ip6tables-restore"
	}
	return "iptables-restore"
}

func iptablesTool(f Family) string {
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// cleanupSteps are istio-iptables' cleanup: unhook the chains from
// PREROUTING and OUTPUT (TCP-only jumps, and the every-protocol OUTPUT
// jump of DNS capture), flush them, delete them, in the nat table, then
// the DNS capture's raw table. Each step may fail (nothing installed).
// nftables: the whole table inet weft goes.
func cleanupSteps(b Backend, fams []Family) []step {
	if b == NFTables {
		return []step{{name: "nft", args: []string{"delete", "table", "inet", NFTTable}, mayFail: true}}
	}
	type table struct {
		name   string
		hooks  [][]string // rule specs after -D
		chains []string
	}
	tables := []table{{
		name: "nat",
		hooks: [][]string{
			{"PREROUTING", "-p", "tcp", "-j", ChainInbound},
			{"OUTPUT", "-p", "tcp", "-j", ChainOutput},
			{"OUTPUT", "-j", ChainOutput},
		},
		chains: []string{ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput, ChainOutputDNS},
	}, {
		name:   "raw",
		hooks:  [][]string{{"OUTPUT", "-j", ChainOutputDNS}, {"PREROUTING", "-j", ChainInbound}},
		chains: []string{ChainOutputDNS, ChainInbound},
	}}
	var out []step
	for _, f := range fams {
		t := iptablesTool(f)
		for _, tb := range tables {
			for _, h := range tb.hooks {
				out = append(out, step{name: t, args: append([]string{"-t", tb.name, "-D"}, h...), mayFail: true})
			}
			for _, verb := range []string{"-F", "-X"} {
				for _, c := range tb.chains {
					out = append(out, step{name: t, args: []string{"-t", tb.name, verb, c}, mayFail: true})
				}
			}
		}
	}
	return out
}
