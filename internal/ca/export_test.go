package ca

import (
	"crypto/ecdsa"
	"crypto/x509"
)

// The helpers of this package's tests, for the tests of package kubeca
// that run against a real API server (kube*_test.go, package ca_test).
var (
	NewTestCA   = newTestCA
	Serve       = serve
	WithToken   = withToken
	ECKey       = ecKey
	CSRPEM      = csrPEM
	MakeCA      = makeCA
	PEMOf       = pemOf
	VerifyChain = verifyChain
)

// TokenKeyBytes is the length of a generated token key.
const TokenKeyBytes = tokenKeyBytes

// Cert is the test certificate.
func (c *testCert) Cert() *x509.Certificate { return c.cert }

// Key is the test certificate's private key.
func (c *testCert) Key() *ecdsa.PrivateKey { return c.key }
