package capture

import (
	"fmt"
	"strconv"
	"strings"
)

// RenderIPTables returns the iptables-restore input of rules, the same
// for iptables and ip6tables: the nat table (chain declarations, then the
// rules with "-A"), and the raw table when the rules capture DNS.
func RenderIPTables(rules []Rule) string {
	var b strings.Builder
	natChains := []string{ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput}
	if hasTable(rules, TableNAT, ChainOutputDNS) {
		natChains = append(natChains, ChainOutputDNS)
	}
	renderTable(&b, rules, TableNAT, natChains)
	if hasTable(rules, TableRaw, "") {
		renderTable(&b, rules, TableRaw, []string{ChainOutputDNS, ChainInbound})
	}
	return b.String()
}

// renderTable writes one table of an iptables-restore input.
func renderTable(b *strings.Builder, rules []Rule, table string, chains []string) {
	name := table
	if name == TableNAT {
		name = "nat"
	}
	fmt.Fprintf(b, "*%s\n", name)
	for _, c := range chains {
		fmt.Fprintf(b, ":%s - [0:0]\n", c)
	}
	for i := range rules {
		if rules[i].Table != table {
			continue
		}
		b.WriteString("-A ")
		b.WriteString(strings.Join(iptablesArgs(&rules[i]), " "))
		b.WriteByte('\n')
	}
	b.WriteString("COMMIT\n")
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
	if p := r.proto(); p != "" {
		a = append(a, "-p", p)
	}
	a = append(a, iptablesPorts(r)...)
	if r.SPort > 0 {
		a = append(a, "--sport", strconv.Itoa(int(r.SPort)))
	}
	a = append(a, iptablesOwner("--uid-owner", r.UID, r.NotUID)...)
	a = append(a, iptablesOwner("--gid-owner", r.GID, r.NotGID)...)
	switch {
	case r.Redirect > 0:
		return append(a, "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(r.Redirect)))
	case r.CTZone > 0:
		return append(a, "-j", "CT", "--zone", strconv.Itoa(int(r.CTZone)))
	}
	return append(a, "-j", r.Jump)
}

// proto is the rule's protocol: "tcp", "udp" or "" (any).
func (r *Rule) proto() string {
	switch {
	case r.TCP:
		return "tcp"
	case r.UDP:
		return "udp"
	}
	return ""
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
// With DNS capture, the raw table's chains are base chains RAW_PREROUTING
// and RAW_OUTPUT at priority raw (before conntrack, as the raw table) and
// RAW_ISTIO_OUTPUT_DNS, RAW_ISTIO_INBOUND: one nftables table holds both,
// and chain names are per table.
func RenderNFT(rules []Rule) string {
	var b strings.Builder
	// Declaring the table first makes the delete succeed when it does
	// not exist yet; the whole script is one transaction.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", NFTTable, NFTTable)
	fmt.Fprintf(&b, "table inet %s {\n", NFTTable)
	for _, c := range nftChains(rules) {
		fmt.Fprintf(&b, "\tchain %s {\n", nftChainName(c.table, c.name))
		if c.hook != "" {
			fmt.Fprintf(&b, "\t\t%s\n", c.hook)
		}
		for i := range rules {
			if rules[i].Table == c.table && rules[i].Chain == c.name {
				fmt.Fprintf(&b, "\t\t%s\n", nftRule(&rules[i]))
			}
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

type nftChain struct{ table, name, hook string }

// nftChains are the chains of the script: the nat ones always, the DNS
// ones when rules use them.
func nftChains(rules []Rule) []nftChain {
	out := []nftChain{
		{TableNAT, "PREROUTING", "type nat hook prerouting priority dstnat; policy accept;"},
		{TableNAT, "OUTPUT", "type nat hook output priority -100; policy accept;"},
		{TableNAT, ChainInbound, ""}, {TableNAT, ChainRedirect, ""}, {TableNAT, ChainInRedirect, ""}, {TableNAT, ChainOutput, ""},
	}
	if hasTable(rules, TableNAT, ChainOutputDNS) {
		out = append(out, nftChain{TableNAT, ChainOutputDNS, ""})
	}
	if hasTable(rules, TableRaw, "") {
		out = append(out,
			nftChain{TableRaw, "PREROUTING", "type filter hook prerouting priority raw; policy accept;"},
			nftChain{TableRaw, "OUTPUT", "type filter hook output priority raw; policy accept;"},
			nftChain{TableRaw, ChainOutputDNS, ""}, nftChain{TableRaw, ChainInbound, ""})
	}
	return out
}

// nftChainName is the chain's name in table inet weft: raw chains get a
// RAW_ prefix.
func nftChainName(table, chain string) string {
	if table == TableRaw {
		return "RAW_" + chain
	}
	return chain
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
	if r.Family != 0 && !r.Src.IsValid() && !r.Dst.IsValid() {
		// A rule for one family that matches no address (a DNS jump).
		a = append(a, "meta", "nfproto", r.Family.String())
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
	a = append(a, nftPorts(r)...)
	a = append(a, nftOwner("skuid", r.UID, r.NotUID)...)
	a = append(a, nftOwner("skgid", r.GID, r.NotGID)...)
	switch {
	case r.Redirect > 0:
		a = append(a, "redirect", "to", ":"+strconv.Itoa(int(r.Redirect)))
	case r.CTZone > 0:
		a = append(a, "ct", "zone", "set", strconv.Itoa(int(r.CTZone)))
	case r.Jump == "RETURN":
		a = append(a, "return")
	default:
		a = append(a, "jump", nftChainName(r.Table, r.Jump))
	}
	return strings.Join(a, " ")
}

// nftPorts renders the protocol and ports: "tcp dport 53", "udp sport
// 15053", or "meta l4proto tcp" without ports.
func nftPorts(r *Rule) []string {
	p := r.proto()
	if p == "" {
		return nil
	}
	var a []string
	if len(r.DPorts) > 0 {
		a = append(a, p, "dport")
		if r.NotPorts {
			a = append(a, "!=")
		}
		if len(r.DPorts) == 1 {
			a = append(a, strconv.Itoa(int(r.DPorts[0])))
		} else {
			a = append(a, "{", joinPorts(r.DPorts, ", "), "}")
		}
	}
	if r.SPort > 0 {
		a = append(a, p, "sport", strconv.Itoa(int(r.SPort)))
	}
	if len(a) == 0 {
		a = append(a, "meta", "l4proto", p)
	}
	return a
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
