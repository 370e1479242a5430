package kube

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/netnstest"
	"github.com/weftmesh/weft/internal/syncbuf"
)

// kubelet runs pods as a kubelet would, without a container runtime: the
// pod's network namespace; its volumes as per-pod directories (emptyDir,
// projected service-account tokens from TokenRequest, ConfigMaps); each
// container as a process in that namespace and in a mount namespace of its
// own where the volumes are bind-mounted at their mountPaths, as its
// runAsUser, with its environment resolved (downward API included); init
// containers in order, a native sidecar (restartPolicy Always) left
// running before the app containers start; readiness probes from the node;
// the pod's status (IP, conditions) written back to the API server.
type kubelet struct {
	t    *testing.T
	m    *mesh
	net  *netnstest.Topology
	bin  string // the image's binaries, built by the test
	dir  string // per-pod volume directories
	next int    // next pod address
	// hosts are the Service names kube-dns would answer in the pods'
	// namespace (short, namespaced and FQDN), to their ClusterIPs, and
	// weft-control's name to the node's address. The sidecar's DNS proxy
	// (15053) would answer them if DNS were captured; `weft iptables`
	// captures TCP only, so the names are in each pod's /etc/hosts.
	hosts map[string]string
}

// runningPod is a pod the kubelet started.
type runningPod struct {
	k     *kubelet
	pod   *corev1.Pod
	netns string
	ip    string
	procs []*process
}

// process is one running container.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
}

func newKubelet(t *testing.T, m *mesh, net *netnstest.Topology, bin string) *kubelet {
	t.Helper()
	dir, err := os.MkdirTemp("", "weft-kube-pods-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	svcs, err := m.client.CoreV1().Services(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]string{controlName: net.HostIP(), controlName + ".cluster.local": net.HostIP()}
	for _, s := range svcs.Items {
		for _, name := range []string{s.Name, s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc", s.Name + "." + s.Namespace + ".svc.cluster.local"} {
			hosts[name] = s.Spec.ClusterIP
		}
	}
	return &kubelet{t: t, m: m, net: net, bin: bin, dir: dir, next: 10, hosts: hosts}
}

// start runs pod p: network, status with its IP, volumes, the init
// containers (to completion, or left running for native sidecars), then
// the app containers.
func (k *kubelet) start(ctx context.Context, p *corev1.Pod) *runningPod {
	t := k.t
	t.Helper()
	host := k.next
	k.next++
	dns := netnstest.PodDNS(p.Namespace)
	dns.Hostname = p.Name
	pn := k.net.Add(strconv.Itoa(host), host, k.hosts, dns)
	rp := &runningPod{k: k, netns: pn.Name, ip: pn.IP}
	// The sandbox is up: the pod has its IP (what the downward API's
	// status.podIP reads from then on).
	p = k.updateStatus(ctx, p, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodPending
		s.PodIP, s.PodIPs = pn.IP, []corev1.PodIP{{IP: pn.IP}}
		s.HostIP, s.HostIPs = k.net.HostIP(), []corev1.HostIP{{IP: k.net.HostIP()}}
		setCondition(s, corev1.PodScheduled, true)
	})
	rp.pod = p
	vols := k.volumes(ctx, p)
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			rp.procs = append(rp.procs, k.run(rp, c, vols))
			continue
		}
		cmd := k.command(rp, c, vols)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pod %s: init container %s: %v\n%s", p.Name, c.Name, err, out)
		}
	}
	for i := range p.Spec.Containers {
		rp.procs = append(rp.procs, k.run(rp, &p.Spec.Containers[i], vols))
	}
	rp.pod = k.updateStatus(ctx, p, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		setCondition(s, corev1.PodInitialized, true)
	})
	return rp
}

// waitReady runs the containers' readiness probes from the node (HTTP
// GET on the pod's IP) until they pass, then marks the pod Ready.
func (k *kubelet) waitReady(ctx context.Context, rp *runningPod) {
	t := k.t
	t.Helper()
	cs := append(append([]corev1.Container(nil), rp.pod.Spec.InitContainers...), rp.pod.Spec.Containers...)
	for i := range cs {
		pr := cs[i].ReadinessProbe
		if pr == nil {
			continue
		}
		if pr.HTTPGet == nil {
			t.Fatalf("pod %s: container %s: only httpGet readiness probes are run", rp.pod.Name, cs[i].Name)
		}
		url := fmt.Sprintf("http://%s:%d%s", rp.ip, portOf(&cs[i], pr.HTTPGet.Port.IntVal, pr.HTTPGet.Port.StrVal), pr.HTTPGet.Path)
		waitFor(t, "pod "+rp.pod.Name+": readiness of "+cs[i].Name+" ("+url+")", 30*time.Second, func() (bool, string) {
			for _, proc := range rp.procs {
				select {
				case <-proc.done:
					t.Fatalf("pod %s: container %s exited: %v\n%s", rp.pod.Name, proc.name, proc.cmd.ProcessState, proc.out.String())
				default:
				}
			}
			resp, err := (&http.Client{Timeout: time.Second}).Get(url)
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	}
	rp.pod = k.updateStatus(ctx, rp.pod, func(s *corev1.PodStatus) {
		setCondition(s, corev1.ContainersReady, true)
		setCondition(s, corev1.PodReady, true)
	})
}

func (k *kubelet) updateStatus(ctx context.Context, p *corev1.Pod, f func(*corev1.PodStatus)) *corev1.Pod {
	k.t.Helper()
	p = p.DeepCopy()
	f(&p.Status)
	got, err := k.m.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		k.t.Fatalf("pod %s: status: %v", p.Name, err)
	}
	return got
}

func setCondition(s *corev1.PodStatus, typ corev1.PodConditionType, v bool) {
	st := corev1.ConditionFalse
	if v {
		st = corev1.ConditionTrue
	}
	for i := range s.Conditions {
		if s.Conditions[i].Type == typ {
			s.Conditions[i].Status = st
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: typ, Status: st, LastTransitionTime: metav1.Now()})
}

// volumes makes the pod's volumes real, one directory each: emptyDir
// (world-writable, as the kubelet's), projected service-account tokens
// (TokenRequest with the projection's audience and expiry, bound to the
// pod), projected and plain ConfigMaps, the downward API's namespace.
func (k *kubelet) volumes(ctx context.Context, p *corev1.Pod) map[string]string {
	t := k.t
	t.Helper()
	out := map[string]string{}
	for _, v := range p.Spec.Volumes {
		dir := filepath.Join(k.dir, p.Name, v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out[v.Name] = dir
		switch {
		case v.EmptyDir != nil:
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		case v.ConfigMap != nil:
			k.configMap(ctx, p, v.ConfigMap.Name, dir, false)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					k.token(ctx, p, src.ServiceAccountToken, dir)
				case src.ConfigMap != nil:
					// kube-root-ca.crt of the ServiceAccount admission
					// plugin's volume: published by the controller
					// manager, which does not run here.
					k.configMap(ctx, p, src.ConfigMap.Name, dir, true)
				case src.DownwardAPI != nil:
					for _, item := range src.DownwardAPI.Items {
						if item.FieldRef != nil {
							writeFile(t, filepath.Join(dir, item.Path), fieldRef(t, p, item.FieldRef.FieldPath))
						}
					}
				}
			}
		default:
			t.Fatalf("pod %s: volume %s: only emptyDir, configMap and projected volumes are supported", p.Name, v.Name)
		}
	}
	return out
}

// token writes a service-account token for the pod's service account, as
// the kubelet's projected token: audience, expiry and the pod binding.
func (k *kubelet) token(ctx context.Context, p *corev1.Pod, src *corev1.ServiceAccountTokenProjection, dir string) {
	k.t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := k.m.client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, p.Spec.ServiceAccountName, req, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatalf("pod %s: token for service account %s: %v", p.Name, p.Spec.ServiceAccountName, err)
	}
	writeFile(k.t, filepath.Join(dir, src.Path), tr.Status.Token)
}

func (k *kubelet) configMap(ctx context.Context, p *corev1.Pod, name, dir string, optional bool) {
	k.t.Helper()
	// The kubelet retries a missing ConfigMap until it appears (weft-control
	// publishes istio-ca-root-cert into every namespace); optional ones are
	// looked up once.
	var cm *corev1.ConfigMap
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		cm, err = k.m.client.CoreV1().ConfigMaps(p.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			break
		}
		if optional {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("pod %s: ConfigMap %s: %v after 30 s (the kubelet would not start the pod)", p.Name, name, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, as the kubelet's volume manager retries
	}
	for key, v := range cm.Data {
		writeFile(k.t, filepath.Join(dir, key), v)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run starts container c of rp and stops it at the test's end.
func (k *kubelet) run(rp *runningPod, c *corev1.Container, vols map[string]string) *process {
	t := k.t
	t.Helper()
	cmd := k.command(rp, c, vols)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("pod %s: container %s: %v", rp.pod.Name, c.Name, err)
	}
	p := &process{name: c.Name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	what := rp.pod.Name + "/" + c.Name
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", what, tail(out.String()))
		}
	})
	return p
}

// command is container c as a process: in the pod's network namespace
// (ip netns exec, which also mounts /etc/netns/NS/* over /etc), in a
// private mount namespace (unshare -m) where the volumes are bind-mounted
// at their mountPaths, as the container's user (setpriv), with the
// container's environment only.
func (k *kubelet) command(rp *runningPod, c *corev1.Container, vols map[string]string) *exec.Cmd {
	t := k.t
	t.Helper()
	env := k.env(rp.pod, c)
	argv := expand(append(append([]string(nil), c.Command...), c.Args...), env)
	if len(argv) == 0 {
		t.Fatalf("pod %s: container %s: no command (the image's entrypoint is not known here)", rp.pod.Name, c.Name)
	}
	// The image's binaries are the ones the test built.
	if strings.HasPrefix(c.Image, "ghcr.io/weftmesh/weft") && !strings.Contains(argv[0], "/") {
		argv[0] = filepath.Join(k.bin, argv[0])
	}
	uid, gid := int64(0), int64(0)
	if sc := rp.pod.Spec.SecurityContext; sc != nil {
		uid, gid = deref(sc.RunAsUser, uid), deref(sc.RunAsGroup, gid)
	}
	if sc := c.SecurityContext; sc != nil {
		uid, gid = deref(sc.RunAsUser, uid), deref(sc.RunAsGroup, gid)
	}
	script := "set -e\n" + mountScript(t, c, vols) +
		fmt.Sprintf("exec setpriv --reuid=%d --regid=%d --clear-groups -- \"$@\"\n", uid, gid)
	args := append([]string{"netns", "exec", rp.netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"}, argv...)
	cmd := exec.Command("ip", args...)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}
	for _, key := range keys {
		cmd.Env = append(cmd.Env, key+"="+env[key])
	}
	return cmd
}

// mountScript mounts c's volumes in the process's own mount namespace. A
// mountPath whose directory does not exist on the machine (say
// /var/run/secrets) gets a tmpfs over its nearest existing ancestor first,
// as the container's own filesystem would have it.
func mountScript(t *testing.T, c *corev1.Container, vols map[string]string) string {
	var b strings.Builder
	tmpfs := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		src, ok := vols[vm.Name]
		if !ok {
			t.Fatalf("container %s: volume mount %s: no such volume", c.Name, vm.Name)
		}
		if vm.SubPath != "" {
			src = filepath.Join(src, vm.SubPath)
		}
		if _, err := os.Stat(vm.MountPath); err != nil {
			anc := filepath.Dir(vm.MountPath)
			for {
				if _, err := os.Stat(anc); err == nil {
					break
				}
				anc = filepath.Dir(anc)
			}
			real, err := filepath.EvalSymlinks(anc)
			if err != nil || real == "/" {
				t.Fatalf("container %s: mountPath %s: no ancestor to put a tmpfs on", c.Name, vm.MountPath)
			}
			if !tmpfs[real] {
				tmpfs[real] = true
				fmt.Fprintf(&b, "mount -t tmpfs -o mode=0755 tmpfs %s\n", shellQuote(real))
			}
		}
		fmt.Fprintf(&b, "mkdir -p %s\nmount --bind %s %s\n", shellQuote(vm.MountPath), shellQuote(src), shellQuote(vm.MountPath))
		if vm.ReadOnly {
			fmt.Fprintf(&b, "mount -o remount,bind,ro %s\n", shellQuote(vm.MountPath))
		}
	}
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func deref(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

// env is c's environment: values, and the downward API's fieldRefs read
// from the pod as the API server has it; $(VAR) references to earlier
// variables expanded, as the kubelet does.
func (k *kubelet) env(p *corev1.Pod, c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand([]string{e.Value}, env)[0]
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = fieldRef(k.t, p, e.ValueFrom.FieldRef.FieldPath)
		default:
			k.t.Fatalf("pod %s: container %s: env %s: only values and fieldRefs are supported", p.Name, c.Name, e.Name)
		}
	}
	return env
}

// fieldRef is the downward API's value of path for pod p (the paths the
// kubelet supports for env and volumes).
func fieldRef(t *testing.T, p *corev1.Pod, path string) string {
	t.Helper()
	if m := regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`).FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return p.Labels[m[2]]
		}
		return p.Annotations[m[2]]
	}
	switch path {
	case "metadata.name":
		return p.Name
	case "metadata.namespace":
		return p.Namespace
	case "metadata.uid":
		return string(p.UID)
	case "spec.nodeName":
		return p.Spec.NodeName
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName
	case "status.podIP":
		return p.Status.PodIP
	case "status.hostIP":
		return p.Status.HostIP
	case "status.podIPs":
		ips := make([]string, len(p.Status.PodIPs))
		for i, ip := range p.Status.PodIPs {
			ips[i] = ip.IP
		}
		return strings.Join(ips, ",")
	}
	t.Fatalf("pod %s: fieldRef %s: not supported by the kubelet", p.Name, path)
	return ""
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) with VAR's value when VAR is defined (the
// kubelet's expansion of command, args and env values).
func expand(args []string, env map[string]string) []string {
	for i, a := range args {
		args[i] = varRef.ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
	}
	return args
}

func portOf(c *corev1.Container, port int32, name string) int32 {
	if name == "" {
		return port
	}
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// get runs the test binary in rp's network namespace as a client
// (`kubectl exec POD -- curl URL`): the status (0 without an answer) and
// the body, or the error.
func (rp *runningPod) get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", rp.netns, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=get", urlEnv+"="+url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	first, body, _ := strings.Cut(stdout.String(), "\n")
	status, _ := strconv.Atoi(first)
	return status, body
}

// podOf is the running pod of the Deployment named app.
func podOf(t *testing.T, pods []*runningPod, app string) *runningPod {
	t.Helper()
	for _, p := range pods {
		if p.pod.Labels["app"] == app {
			return p
		}
	}
	t.Fatalf("no pod of app %s", app)
	return nil
}

func tail(s string) string {
	if len(s) > 6000 {
		return "…" + s[len(s)-6000:]
	}
	return s
}
