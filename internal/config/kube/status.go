package kube

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weftmesh/weft/internal/config"
)

// The analysis message types weft writes into status.validationMessages.
// Istio reports a spec that fails validation as IST0106
// SchemaValidationError (pkg/config/analysis/msg/messages.yaml); weft uses
// it for every problem its validation finds, at the problem's level.
const (
	schemaValidationCode = "IST0106"
	schemaValidationName = "SchemaValidationError"
	schemaValidationDoc  = "https://istio.io/latest/docs/reference/config/analysis/ist0106/"
	// lastGoodName marks, at level INFO, a rejected object whose previous
	// valid version stays in force (weft's own message: Istio has none).
	lastGoodCode = "WEFT0001"
	lastGoodName = "LastGoodVersionInForce"
)

// statusMessages returns the status.validationMessages of one object:
// every problem, in Istio's analysis message format (type, level,
// documentationUrl) plus the message itself with its field path; nil
// when there is none.
func statusMessages(problems []*config.Error, kept bool) []any {
	var out []any
	for _, e := range problems {
		level := "ERROR"
		if e.Warning {
			level = "WARNING"
		}
		msg := e.Message
		if e.Path != "" {
			msg = e.Path + ": " + msg
		}
		out = append(out, map[string]any{
			"type":             map[string]any{"code": schemaValidationCode, "name": schemaValidationName},
			"level":            level,
			"documentationUrl": schemaValidationDoc,
			"message":          msg,
		})
	}
	if kept {
		out = append(out, map[string]any{
			"type":    map[string]any{"code": lastGoodCode, "name": lastGoodName},
			"level":   "INFO",
			"message": "this version is rejected; weft-control keeps the last valid version of the object in force",
		})
	}
	return out
}

// writeStatus brings every object's status.validationMessages up to date
// with a load's problems. Only objects whose messages differ are written
// (status writes do not trigger reloads: see contentChanged), so that
// replicas agreeing on the messages do not write at all. Failures go to
// OnError; the next reload retries.
func (s *Source) writeStatus(ctx context.Context, objs []*unstructured.Unstructured, r *config.LoadResult) {
	byKey := map[config.Key][]*config.Error{}
	for _, e := range r.Errors {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	rejected := map[config.Key]bool{}
	for _, k := range r.Rejected {
		rejected[k] = true
	}
	for _, u := range objs {
		k := config.Key{Kind: config.Kind(u.GetKind()), Namespace: u.GetNamespace(), Name: u.GetName()}
		_, inForce := s.o.Store.Get(k)
		want := statusMessages(byKey[k], rejected[k] && inForce)
		have, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		if reflect.DeepEqual(normalize(have), normalize(want)) {
			continue
		}
		if err := s.updateStatus(ctx, u, want); err != nil {
			s.report(err)
		}
	}
}

// normalize makes an empty list and none compare equal.
func normalize(v []any) []any {
	if len(v) == 0 {
		return nil
	}
	return v
}

// updateStatus writes one object's status.validationMessages and
// observedGeneration through the status subresource, keeping the rest of
// its status.
func (s *Source) updateStatus(ctx context.Context, u *unstructured.Unstructured, msgs []any) error {
	res, ok := ResourceOf(config.Kind(u.GetKind()))
	if !ok {
		return nil
	}
	gvr := res.GVR()
	for _, w := range s.watched {
		if w.res.Kind == res.Kind {
			gvr = w.gvr
		}
	}
	c := u.DeepCopy() // the informer's object is shared
	status, _, _ := unstructured.NestedMap(c.Object, "status")
	if status == nil {
		status = map[string]any{}
	}
	if msgs == nil {
		delete(status, "validationMessages")
	} else {
		status["validationMessages"] = msgs
	}
	status["observedGeneration"] = c.GetGeneration()
	c.Object["status"] = status
	_, err := s.client.Resource(gvr).Namespace(c.GetNamespace()).UpdateStatus(ctx, c, metav1.UpdateOptions{FieldManager: "weft-control"})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		// The object changed since it was listed: the change's event
		// brings a reload that writes the status again if still needed.
		return nil
	}
	return fmt.Errorf("kubernetes config source: writing the status of %s %s/%s: %w (weft-control needs update on %s/status)",
		u.GetKind(), u.GetNamespace(), u.GetName(), err, strings.ToLower(res.CRDName()))
}
