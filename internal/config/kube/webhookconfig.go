package kube

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookConfigOptions describe where the API server reaches weft-control's
// validating webhook.
type WebhookConfigOptions struct {
	// Namespace and Service name weft-control's Service (defaults
	// istio-system and weft-control); Port is its webhook port (default
	// 443, forwarded to weft-control's --webhook-address).
	Namespace, Service string
	Port               int32
	// CABundle is the PEM of the CA that issued the webhook's serving
	// certificate (the mesh root when weft-control issues it; left out of
	// the chart's template: weft-control sets it at start).
	CABundle []byte
}

// ValidatingWebhookName is the name of the webhook configuration and of
// its webhook.
const ValidatingWebhookName = "validation.weft.dev"

// ValidatingWebhookConfiguration returns the configuration that sends
// every CREATE and UPDATE of the kinds of Resources, at every version, to
// Webhook. The failure policy is Fail, as Istio's validator once ready:
// an object is never stored unchecked (DELETE is not intercepted, so
// objects can be removed while weft-control is down).
func ValidatingWebhookConfiguration(o WebhookConfigOptions) *admissionregistrationv1.ValidatingWebhookConfiguration {
	if o.Namespace == "" {
		o.Namespace = "istio-system"
	}
	if o.Service == "" {
		o.Service = "weft-control"
	}
	if o.Port == 0 {
		o.Port = 443
	}
	path := WebhookPath
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	var rules []admissionregistrationv1.RuleWithOperations
	byGroup := map[string]int{}
	for _, r := range Resources() {
		i, ok := byGroup[r.Group]
		if !ok {
			i = len(rules)
			byGroup[r.Group] = i
			rules = append(rules, admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{r.Group}, APIVersions: []string{"*"}},
			})
		}
		rules[i].Resources = append(rules[i].Resources, r.Plural)
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   ValidatingWebhookName,
			Labels: map[string]string{"app.kubernetes.io/part-of": "weft"},
		},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: ValidatingWebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: o.Service, Path: &path, Port: &o.Port},
				CABundle: o.CABundle,
			},
			Rules:                   rules,
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
		}},
	}
}
