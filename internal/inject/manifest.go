package inject

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookOptions place the injection webhook. Zero fields take the
// defaults written on them.
type WebhookOptions struct {
	// Name of the MutatingWebhookConfiguration (default
	// weft-sidecar-injector).
	Name string
	// ServiceName, ServiceNamespace and ServicePort reach weft-control's
	// webhook server (default weft-control, istio-system, 443).
	ServiceName      string
	ServiceNamespace string
	ServicePort      int32
	// CABundle verifies the webhook server's certificate (PEM; empty in
	// the chart's template: weft-control sets it to the mesh root).
	CABundle []byte
}

// WebhookConfiguration is the MutatingWebhookConfiguration that sends pod
// creations to Handler. Kubernetes selectors cannot say "label A or label
// B", so, as Istio's chart does with its namespace.* and object.*
// webhooks, there are three entries, of which at most one matches a pod:
//
//   - namespaces labelled istio-injection=enabled (and not
//     weft-injection=disabled);
//   - namespaces labelled weft-injection=enabled and without
//     istio-injection (so istio-injection=disabled wins);
//   - pods labelled sidecar.istio.io/inject=true in namespaces with
//     neither label.
//
// Pods labelled sidecar.istio.io/inject=false are never sent; the
// annotation opt-out is read by Decide. failurePolicy is Fail, as Istio's:
// a pod is not started without its sidecar while the webhook is down.
func WebhookConfiguration(o WebhookOptions) *admissionregistrationv1.MutatingWebhookConfiguration {
	o.Name = firstNonEmpty(o.Name, "weft-sidecar-injector")
	o.ServiceName = firstNonEmpty(o.ServiceName, "weft-control")
	o.ServiceNamespace = firstNonEmpty(o.ServiceNamespace, "istio-system")
	if o.ServicePort == 0 {
		o.ServicePort = 443
	}
	in := func(k string, v ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: v}
	}
	notIn := func(k string, v ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: v}
	}
	absent := func(k string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpDoesNotExist}
	}
	notOptedOut := []metav1.LabelSelectorRequirement{notIn(LabelInject, "false")}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: map[string]string{"app.kubernetes.io/name": "weft", "app.kubernetes.io/component": "sidecar-injector"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			o.webhook("istio-namespace.sidecar-injector.weft.dev",
				[]metav1.LabelSelectorRequirement{in(NamespaceLabelIstio, "enabled"), notIn(NamespaceLabelWeft, "disabled")}, notOptedOut),
			o.webhook("weft-namespace.sidecar-injector.weft.dev",
				[]metav1.LabelSelectorRequirement{in(NamespaceLabelWeft, "enabled"), absent(NamespaceLabelIstio)}, notOptedOut),
			o.webhook("object.sidecar-injector.weft.dev",
				[]metav1.LabelSelectorRequirement{absent(NamespaceLabelIstio), absent(NamespaceLabelWeft)},
				[]metav1.LabelSelectorRequirement{in(LabelInject, "true")}),
		},
	}
}

func (o WebhookOptions) webhook(name string, ns, obj []metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
	path := WebhookPath
	port := o.ServicePort
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	timeout := int32(10)
	return admissionregistrationv1.MutatingWebhook{
		Name: name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Name: o.ServiceName, Namespace: o.ServiceNamespace, Path: &path, Port: &port},
			CABundle: o.CABundle,
		},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
		}},
		NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: ns},
		ObjectSelector:          &metav1.LabelSelector{MatchExpressions: obj},
		FailurePolicy:           &fail,
		SideEffects:             &none,
		ReinvocationPolicy:      &never,
		TimeoutSeconds:          &timeout,
		AdmissionReviewVersions: []string{"v1"},
	}
}
