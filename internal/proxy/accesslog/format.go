package accesslog

import (
	"fmt"
	"strconv"
	"strings"
)

// op is one command operator.
type op uint8

const (
	opStartTime op = iota + 1
	opReq
	opResp
	opTrailer
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opConnTerminationDetails
	opBytesReceived
	opBytesSent
	opDuration
	opRequestDuration
	opResponseDuration
	opResponseTxDuration
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocal
	opUpstreamLocalNoPort
	opUpstreamLocalPort
	opUpstreamRemote
	opUpstreamRemoteNoPort
	opUpstreamRemotePort
	opUpstreamTransportFailure
	opDownstreamRemote
	opDownstreamRemoteNoPort
	opDownstreamRemotePort
	opDownstreamDirectRemote
	opDownstreamDirectRemoteNoPort
	opDownstreamLocal
	opDownstreamLocalNoPort
	opDownstreamLocalPort
	opDownstreamPeerURISAN
	opDownstreamLocalURISAN
	opProtocol
	opRequestedServerName
	opRouteName
	opHostname
	opUpstreamAttemptCount
)

// argKind says which arguments an operator takes.
type argKind uint8

const (
	argNone   argKind = iota
	argHeader         // (X?Y):Z, required
	argTime           // optional (strftime format)
)

type opSpec struct {
	op   op
	args argKind
}

// operators are the command operators weft-proxy implements, by name, as
// Envoy's "Access logging" documentation (Command Operators) defines them.
// REQUEST_HEADER, RESPONSE_HEADER and RESPONSE_TRAILER are Envoy's newer
// names for REQ, RESP and TRAILER; UPSTREAM_CLUSTER_RAW is UPSTREAM_CLUSTER
// without alt_stat_name (which weft-proxy does not support, so both print
// the cluster name).
var operators = map[string]opSpec{
	"START_TIME":                             {opStartTime, argTime},
	"REQ":                                    {opReq, argHeader},
	"REQUEST_HEADER":                         {opReq, argHeader},
	"RESP":                                   {opResp, argHeader},
	"RESPONSE_HEADER":                        {opResp, argHeader},
	"TRAILER":                                {opTrailer, argHeader},
	"RESPONSE_TRAILER":                       {opTrailer, argHeader},
	"RESPONSE_CODE":                          {opResponseCode, argNone},
	"RESPONSE_FLAGS":                         {opResponseFlags, argNone},
	"RESPONSE_CODE_DETAILS":                  {opResponseCodeDetails, argNone},
	"CONNECTION_TERMINATION_DETAILS":         {opConnTerminationDetails, argNone},
	"BYTES_RECEIVED":                         {opBytesReceived, argNone},
	"BYTES_SENT":                             {opBytesSent, argNone},
	"DURATION":                               {opDuration, argNone},
	"REQUEST_DURATION":                       {opRequestDuration, argNone},
	"RESPONSE_DURATION":                      {opResponseDuration, argNone},
	"RESPONSE_TX_DURATION":                   {opResponseTxDuration, argNone},
	"UPSTREAM_HOST":                          {opUpstreamHost, argNone},
	"UPSTREAM_CLUSTER":                       {opUpstreamCluster, argNone},
	"UPSTREAM_CLUSTER_RAW":                   {opUpstreamCluster, argNone},
	"UPSTREAM_LOCAL_ADDRESS":                 {opUpstreamLocal, argNone},
	"UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":    {opUpstreamLocalNoPort, argNone},
	"UPSTREAM_LOCAL_PORT":                    {opUpstreamLocalPort, argNone},
	"UPSTREAM_REMOTE_ADDRESS":                {opUpstreamRemote, argNone},
	"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":   {opUpstreamRemoteNoPort, argNone},
	"UPSTREAM_REMOTE_PORT":                   {opUpstreamRemotePort, argNone},
	"UPSTREAM_TRANSPORT_FAILURE_REASON":      {opUpstreamTransportFailure, argNone},
	"DOWNSTREAM_REMOTE_ADDRESS":              {opDownstreamRemote, argNone},
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": {opDownstreamRemoteNoPort, argNone},
	"DOWNSTREAM_REMOTE_PORT":                 {opDownstreamRemotePort, argNone},
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":       {opDownstreamDirectRemote, argNone},
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": {opDownstreamDirectRemoteNoPort, argNone},
	"DOWNSTREAM_LOCAL_ADDRESS":                      {opDownstreamLocal, argNone},
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         {opDownstreamLocalNoPort, argNone},
	"DOWNSTREAM_LOCAL_PORT":                         {opDownstreamLocalPort, argNone},
	"DOWNSTREAM_PEER_URI_SAN":                       {opDownstreamPeerURISAN, argNone},
	"DOWNSTREAM_LOCAL_URI_SAN":                      {opDownstreamLocalURISAN, argNone},
	"PROTOCOL":                                      {opProtocol, argNone},
	"REQUESTED_SERVER_NAME":                         {opRequestedServerName, argNone},
	"ROUTE_NAME":                                    {opRouteName, argNone},
	"HOSTNAME":                                      {opHostname, argNone},
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":                {opUpstreamAttemptCount, argNone},
}

// command is one parsed command operator.
type command struct {
	op     op
	name   string      // opReq/opResp/opTrailer: header name, lower case
	alt    string      // the alternative header of (X?Y), or ""
	maxLen int         // :Z truncation, 0 for none
	time   *timeFormat // opStartTime with a format; nil for Envoy's default
}

// segment is a literal run (cmd == nil) or one command.
type segment struct {
	lit []byte
	cmd *command
}

// textFormat is a compiled format string.
type textFormat struct {
	segs []segment
}

// single returns the format's command when the format is exactly one
// command and nothing else (the case typed JSON renders with the
// command's own type).
func (f *textFormat) single() *command {
	if len(f.segs) == 1 {
		return f.segs[0].cmd
	}
	return nil
}

// parseText compiles a format string. The syntax is Envoy's substitution
// format parser's: "%%" is a literal '%'; a command is %NAME%,
// %NAME(args)% or %NAME(args):Z% with NAME made of A-Z, 0-9 and '_'; any
// other '%' is an error (Envoy: "Couldn't find valid command at
// position"), and so is a NAME weft-proxy does not implement. hostname is
// %HOSTNAME%, fixed at configuration.
func parseText(s, hostname string) (*textFormat, error) {
	f := &textFormat{}
	var lit []byte
	for i := 0; i < len(s); {
		if s[i] != '%' {
			lit = append(lit, s[i])
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit = append(lit, '%')
			i += 2
			continue
		}
		cmd, n, err := parseCommand(s[i:], i)
		if err != nil {
			return nil, err
		}
		i += n
		if cmd.op == opHostname {
			lit = append(lit, hostname...)
			continue
		}
		if len(lit) > 0 {
			f.segs = append(f.segs, segment{lit: lit})
			lit = nil
		}
		f.segs = append(f.segs, segment{cmd: cmd})
	}
	if len(lit) > 0 {
		f.segs = append(f.segs, segment{lit: lit})
	}
	return f, nil
}

// parseCommand parses the command at the start of s (s[0] == '%') and
// returns it with the number of bytes it spans.
func parseCommand(s string, pos int) (*command, int, error) {
	i := 1
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	name := s[1:i]
	if name == "" {
		return nil, 0, fmt.Errorf("position %d: no valid command after '%%'; write %%%% for a literal '%%'", pos)
	}
	var args string
	hasArgs := false
	if i < len(s) && s[i] == '(' {
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return nil, 0, fmt.Errorf("position %d: %%%s(: unterminated '('", pos, name)
		}
		args, hasArgs = s[i+1:i+end], true
		i += end + 1
	}
	maxLen := 0
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil || n <= 0 {
			return nil, 0, fmt.Errorf("position %d: %%%s%%: invalid length after ':'", pos, name)
		}
		maxLen, i = n, j
	}
	if i >= len(s) || s[i] != '%' {
		return nil, 0, fmt.Errorf("position %d: %%%s: missing the closing '%%'; write %%%% for a literal '%%'", pos, name)
	}
	spec, ok := operators[name]
	if !ok {
		return nil, 0, fmt.Errorf("position %d: command operator %%%s%% is not supported by weft-proxy", pos, name)
	}
	cmd, err := newCommand(spec, name, args, hasArgs, maxLen)
	if err != nil {
		return nil, 0, fmt.Errorf("position %d: %w", pos, err)
	}
	return cmd, i + 1, nil
}

func newCommand(spec opSpec, name, args string, hasArgs bool, maxLen int) (*command, error) {
	c := &command{op: spec.op, maxLen: maxLen}
	switch spec.args {
	case argHeader:
		if !hasArgs || args == "" {
			return nil, fmt.Errorf("%%%s%% needs a header name, as in %%%s(x-foo)%%", name, name)
		}
		h, alt, hasAlt := strings.Cut(args, "?")
		if h == "" || hasAlt && alt == "" {
			return nil, fmt.Errorf("%%%s(%s)%%: both header names are required in (X?Y)", name, args)
		}
		c.name, c.alt = strings.ToLower(h), strings.ToLower(alt)
	case argTime:
		if hasArgs && args != "" {
			tf, err := parseTimeFormat(args)
			if err != nil {
				return nil, fmt.Errorf("%%%s(%s)%%: %w", name, args, err)
			}
			c.time = tf
		}
	default:
		if hasArgs {
			return nil, fmt.Errorf("%%%s%% takes no arguments", name)
		}
	}
	return c, nil
}
