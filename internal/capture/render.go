package capture

import (
	"fmt"
	"strconv"
	"strings"
)

// RenderIPTables returns the iptables-restore input (nat table) of rules,
// the same for iptables and ip6tables: chain declarations, then the rules
// with "-A".
func RenderIPTables(rules []Rule) string {
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, c := range []string{ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput} {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for i := range rules {
		b.WriteString("-A ")
		b.WriteString(strings.Join(iptablesArgs(&rules[i]), " "))
		b.WriteByte('\n')
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// iptablesArgs renders r after "-A" in istio-iptables' argument order.
func iptablesArgs(r *Rule) []string {
	a := []string{r.Chain}
	if r.OutIface != "" {
		a = append(a, "-o", r.OutIface)
	}
	if r.Src.IsValid() {
		a = append(a, "-s", r.Src.String())
	}
	if r.Dst.IsValid() {
		if r.NotDst {
			a = append(a, "!")
		}
		a = append(a, "-d", r.Dst.String())
	}
	if r.TCP {
		a = append(a, "-p", "tcp")
	}
	a = append(a, iptablesPorts(r)...)
	a = append(a, iptablesOwner("--uid-owner", r.UID, r.NotUID)...)
	a = append(a, iptablesOwner("--gid-owner", r.GID, r.NotGID)...)
	if r.Redirect > 0 {
		return append(a, "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(r.Redirect)))
	}
	return append(a, "-j", r.Jump)
}

func iptablesPorts(r *Rule) []string {
	var a []string
	switch {
	case len(r.DPorts) == 0:
		return nil
	case len(r.DPorts) == 1:
		if r.NotPorts {
			a = append(a, "!")
		}
		return append(a, "--dport", strconv.Itoa(int(r.DPorts[0])))
	}
	a = append(a, "-m", "multiport")
	if r.NotPorts {
		a = append(a, "!")
	}
	return append(a, "--dports", joinPorts(r.DPorts, ","))
}

func iptablesOwner(opt string, id *uint32, not bool) []string {
	if id == nil {
		return nil
	}
	a := []string{"-m", "owner"}
	if not {
		a = append(a, "!")
	}
	return append(a, opt, strconv.FormatUint(uint64(*id), 10))
}

func joinPorts(ports []uint16, sep string) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, sep)
}

// NFTTable is the nftables table weft installs (family inet: one table
// for IPv4 and IPv6).
const NFTTable = "weft"

// RenderNFT returns an nft -f script that replaces table inet weft
// atomically: the base chains hook prerouting and output at Istio's nat
// priorities, and the ISTIO_* chains hold the same rules as iptables.
func RenderNFT(rules []Rule) string {
	var b strings.Builder
	// Declaring the table first makes the delete succeed when it does
	// not exist yet; the whole script is one transaction.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", NFTTable, NFTTable)
	fmt.Fprintf(&b, "table inet %s {\n", NFTTable)
	base := map[string]string{
		"PREROUTING": "type nat hook prerouting priority dstnat; policy accept;",
		"OUTPUT":     "type nat hook output priority -100; policy accept;",
	}
	for _, c := range []string{"PREROUTING", "OUTPUT", ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput} {
		fmt.Fprintf(&b, "\tchain %s {\n", c)
		if h := base[c]; h != "" {
			fmt.Fprintf(&b, "\t\t%s\n", h)
		}
		for i := range rules {
			if rules[i].Chain == c {
				fmt.Fprintf(&b, "\t\t%s\n", nftRule(&rules[i]))
			}
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// nftRule renders r as an nft rule statement.
func nftRule(r *Rule) string {
	var a []string
	if r.OutIface != "" {
		a = append(a, "oifname", strconv.Quote(r.OutIface))
	}
	ipk := "ip"
	if r.Family == IPv6 {
		ipk = "ip6"
	}
	if r.Src.IsValid() {
		a = append(a, ipk, "saddr", r.Src.String())
	}
	if r.Dst.IsValid() {
		a = append(a, ipk, "daddr")
		if r.NotDst {
			a = append(a, "!=")
		}
		a = append(a, r.Dst.String())
	}
	switch {
	case len(r.DPorts) > 0:
		a = append(a, "tcp", "dport")
		if r.NotPorts {
			a = append(a, "!=")
		}
		if len(r.DPorts) == 1 {
			a = append(a, strconv.Itoa(int(r.DPorts[0])))
		} else {
			a = append(a, "{", joinPorts(r.DPorts, ", "), "}")
		}
	case r.TCP:
		a = append(a, "meta", "l4proto", "tcp")
	}
	a = append(a, nftOwner("skuid", r.UID, r.NotUID)...)
	a = append(a, nftOwner("skgid", r.GID, r.NotGID)...)
	switch {
	case r.Redirect > 0:
		a = append(a, "redirect", "to", ":"+strconv.Itoa(int(r.Redirect)))
	case r.Jump == "RETURN":
		a = append(a, "return")
	default:
		a = append(a, "jump", r.Jump)
	}
	return strings.Join(a, " ")
}

func nftOwner(key string, id *uint32, not bool) []string {
	if id == nil {
		return nil
	}
	a := []string{"meta", key}
	if not {
		a = append(a, "!=")
	}
	return append(a, strconv.FormatUint(uint64(*id), 10))
}
