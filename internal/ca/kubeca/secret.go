package kubeca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/weftmesh/weft/internal/ca"
)

// Istio's CA Secrets, in the control plane's namespace.
const (
	// SelfSignedSecretName is istiod's self-signed CA Secret: weft-control
	// generates a root there when no plug-in CA is given, and every
	// replica uses the one stored.
	SelfSignedSecretName = "istio-ca-secret"
	// PluggedSecretName is Istio's plug-in CA Secret (an operator's root
	// or intermediate): when present it is the signing CA.
	PluggedSecretName = "cacerts"
	// TokenKeySecretName holds the bootstrap-token key alone when the
	// signing CA is the plug-in Secret, which weft-control does not write.
	TokenKeySecretName = "weft-token-key"
	// SelfSignedSecretType is the type istiod gives istio-ca-secret.
	SelfSignedSecretType corev1.SecretType = "istio.io/ca-root"
)

// Keys of the CA Secrets (Istio's, plus weft's token key).
const (
	SecretCACertKey    = "ca-cert.pem"
	SecretCAKeyKey     = "ca-key.pem"
	SecretCertChainKey = "cert-chain.pem"
	SecretRootCertKey  = "root-cert.pem"
	SecretTokenKeyKey  = "weft-token-key"
)

// SecretStoreOptions configure a SecretStore.
type SecretStoreOptions struct {
	// Client reaches the API server (required). The store gets, creates
	// and updates one Secret: RBAC secrets get, create, update in
	// Namespace.
	Client kubernetes.Interface
	// Namespace of the Secret (required): weft-control's.
	Namespace string
	// Name of the Secret (default SelfSignedSecretName).
	Name string
}

// SecretStore is a RootStore in one Kubernetes Secret, in Istio's layout
// (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem) plus
// weft-token-key. Create relies on the API server refusing a second
// create of one name (AlreadyExists), AddTokenKey on resourceVersion
// conflicts: replicas racing on an empty namespace agree on one root.
// Safe for concurrent use.
type SecretStore struct {
	o SecretStoreOptions
}

var _ ca.RootStore = (*SecretStore)(nil)

// NewSecretStore returns the store.
func NewSecretStore(o SecretStoreOptions) (*SecretStore, error) {
	if o.Client == nil || o.Namespace == "" {
		return nil, errors.New("kubeca.NewSecretStore: SecretStoreOptions.Client and Namespace are required")
	}
	if o.Name == "" {
		o.Name = SelfSignedSecretName
	}
	return &SecretStore{o: o}, nil
}

// String is "Secret <namespace>/<name>".
func (s *SecretStore) String() string { return "Secret " + s.o.Namespace + "/" + s.o.Name }

// Load reads the Secret.
func (s *SecretStore) Load(ctx context.Context) (*ca.Material, error) {
	sec, err := s.o.Client.CoreV1().Secrets(s.o.Namespace).Get(ctx, s.o.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", s, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w (weft-control needs get on secrets in %s)", s, err, s.o.Namespace)
	}
	d := sec.Data
	return &ca.Material{
		Source:   s.String(),
		CertPEM:  d[SecretCACertKey],
		KeyPEM:   d[SecretCAKeyKey],
		ChainPEM: d[SecretCertChainKey],
		RootPEM:  d[SecretRootCertKey],
		TokenKey: d[SecretTokenKeyKey],
	}, nil
}

// Create creates the Secret: type istio.io/ca-root with Istio's four keys
// when m holds a CA (cert-chain.pem empty for a root, as istiod writes
// it), an Opaque Secret with weft-token-key alone otherwise.
func (s *SecretStore) Create(ctx context.Context, m *ca.Material) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.o.Name, Namespace: s.o.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "weft-control"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	if len(m.CertPEM) > 0 {
		sec.Type = SelfSignedSecretType
		sec.Data[SecretCACertKey] = m.CertPEM
		sec.Data[SecretCAKeyKey] = m.KeyPEM
		sec.Data[SecretCertChainKey] = m.ChainPEM
		sec.Data[SecretRootCertKey] = m.RootPEM
	}
	if len(m.TokenKey) > 0 {
		sec.Data[SecretTokenKeyKey] = m.TokenKey
	}
	_, err := s.o.Client.CoreV1().Secrets(s.o.Namespace).Create(ctx, sec, metav1.CreateOptions{FieldManager: "weft-control"})
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%s: %w", s, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("%s: %w (weft-control needs create on secrets in %s)", s, err, s.o.Namespace)
	}
	return nil
}

// AddTokenKey adds weft-token-key to the Secret unless it has one (an
// istio-ca-secret that istiod created), retrying on conflicts; it
// returns the stored key.
func (s *SecretStore) AddTokenKey(ctx context.Context, key []byte) ([]byte, error) {
	api := s.o.Client.CoreV1().Secrets(s.o.Namespace)
	var stored []byte
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sec, err := api.Get(ctx, s.o.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if k := sec.Data[SecretTokenKeyKey]; len(bytes.TrimSpace(k)) > 0 {
			stored = k
			return nil
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[SecretTokenKeyKey] = key
		if _, err := api.Update(ctx, sec, metav1.UpdateOptions{FieldManager: "weft-control"}); err != nil {
			return err
		}
		stored = key
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: adding %s: %w (weft-control needs get and update on secrets in %s)", s, SecretTokenKeyKey, err, s.o.Namespace)
	}
	return stored, nil
}

// KubeCAOptions configure NewKube.
type KubeCAOptions struct {
	// Client and Namespace: where the CA Secrets are (weft-control's
	// namespace; required).
	Client    kubernetes.Interface
	Namespace string
	// CA is the rest of the CA's options (Dir, CertFile, KeyFile,
	// ChainFile, Store and Supplied are set by NewKube).
	CA ca.Options
}

// NewKube returns a CA whose material lives in Kubernetes Secrets of
// o.Namespace, as istiod's does: the plug-in Secret cacerts when present
// (its token key then in weft-token-key), else istio-ca-secret, created
// with a generated root on the first start of the first replica. ctx
// bounds the API calls.
func NewKube(ctx context.Context, o KubeCAOptions) (*ca.CA, error) {
	plugged, err := NewSecretStore(SecretStoreOptions{Client: o.Client, Namespace: o.Namespace, Name: PluggedSecretName})
	if err != nil {
		return nil, err
	}
	co := o.CA
	co.Dir, co.CertFile, co.KeyFile, co.ChainFile = "", "", "", ""
	m, err := plugged.Load(ctx)
	switch {
	case err == nil:
		co.Supplied = m
		co.Store, err = NewSecretStore(SecretStoreOptions{Client: o.Client, Namespace: o.Namespace, Name: TokenKeySecretName})
	case errors.Is(err, fs.ErrNotExist):
		co.Store, err = NewSecretStore(SecretStoreOptions{Client: o.Client, Namespace: o.Namespace, Name: SelfSignedSecretName})
	}
	if err != nil {
		return nil, err
	}
	return ca.NewContext(ctx, co)
}
