package checks

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

type manifests struct {
	sts      []*appsv1.StatefulSet
	services []*corev1.Service
	pdbs     []*policyv1.PodDisruptionBudget
	accounts []*corev1.ServiceAccount
	header   string // the comments before the first object
}

// loadManifests decodes every object of deploy/kubernetes/coffer.yaml
// strictly into its typed API object: an unknown or duplicated field, or a
// value of the wrong type, fails (as `kubectl apply --validate=strict`).
func loadManifests(t *testing.T) manifests {
	t.Helper()
	src := readFile(t, "deploy", "kubernetes", "coffer.yaml")
	var m manifests
	docs := regexp.MustCompile(`(?m)^---\s*$`).Split(src, -1)
	m.header = docs[0]
	for i, doc := range docs {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			m.sts, obj = append(m.sts, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.services, obj = append(m.services, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, o), o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			m.accounts, obj = append(m.accounts, o), o
		default:
			t.Fatalf("object %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("object %d (%s): %v", i, tm.Kind, err)
		}
	}
	return m
}

func checkMeta(t *testing.T, kind string, om metav1.ObjectMeta) {
	t.Helper()
	if om.Name == "" {
		t.Errorf("%s without metadata.name", kind)
	}
	for _, e := range validation.IsDNS1035Label(om.Name) {
		t.Errorf("%s %s: name: %s", kind, om.Name, e)
	}
	for k, v := range om.Labels {
		for _, e := range validation.IsQualifiedName(k) {
			t.Errorf("%s %s: label %s: %s", kind, om.Name, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			t.Errorf("%s %s: label %s=%s: %s", kind, om.Name, k, v, e)
		}
	}
}

// portByName finds a container port by name or number.
func portByName(c corev1.Container, p intstr.IntOrString, proto corev1.Protocol) *corev1.ContainerPort {
	for i, cp := range c.Ports {
		if cp.Protocol == "" {
			cp.Protocol = corev1.ProtocolTCP
		}
		if proto != "" && cp.Protocol != proto {
			continue
		}
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return &c.Ports[i]
		}
	}
	return nil
}

func TestKubernetes(t *testing.T) {
	m := loadManifests(t)
	if len(m.sts) != 1 || len(m.pdbs) != 1 || len(m.services) != 2 {
		t.Fatalf("want one StatefulSet, one PodDisruptionBudget and two Services; got %d, %d, %d", len(m.sts), len(m.pdbs), len(m.services))
	}
	sts := m.sts[0]
	checkMeta(t, "StatefulSet", sts.ObjectMeta)
	for _, s := range m.services {
		checkMeta(t, "Service", s.ObjectMeta)
	}
	checkMeta(t, "PodDisruptionBudget", m.pdbs[0].ObjectMeta)
	for _, a := range m.accounts {
		checkMeta(t, "ServiceAccount", a.ObjectMeta)
	}
	spec := sts.Spec
	pod := spec.Template.Spec
	podLabels := labels.Set(spec.Template.Labels)

	// Required fields and the selector (the API server refuses a
	// StatefulSet whose selector does not match its template).
	if spec.Replicas == nil || *spec.Replicas != 3 {
		t.Fatalf("replicas must be 3")
	}
	replicas := int(*spec.Replicas)
	if spec.Selector == nil || len(spec.Selector.MatchLabels) == 0 {
		t.Fatal("StatefulSet without selector.matchLabels")
	}
	sel, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("StatefulSet selector %v does not match the template's labels %v (%v)", spec.Selector, podLabels, err)
	}
	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Error("podManagementPolicy must be Parallel: no pod is ready before the region bootstraps with all of them")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Name == "" || c.Image == "" {
		t.Error("container needs a name and an image")
	}
	for _, e := range validation.IsDNS1123Label(c.Name) {
		t.Errorf("container name: %s", e)
	}

	// Ports: valid names, unique, in range.
	seen := map[string]bool{}
	for _, p := range c.Ports {
		for _, e := range validation.IsValidPortName(p.Name) {
			t.Errorf("port %s: %s", p.Name, e)
		}
		for _, e := range validation.IsValidPortNum(int(p.ContainerPort)) {
			t.Errorf("port %s: %s", p.Name, e)
		}
		if seen[p.Name] {
			t.Errorf("port name %s twice", p.Name)
		}
		seen[p.Name] = true
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP && p.Protocol != corev1.ProtocolUDP {
			t.Errorf("port %s: protocol %s", p.Name, p.Protocol)
		}
	}

	// Env: valid names, no duplicates, $(VAR) only of variables defined
	// before (Kubernetes leaves the others as they are), every COFFER_*
	// one that a flag reads.
	envVals := map[string]string{}
	var envKeys []string
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		for _, msg := range validation.IsEnvVarName(e.Name) {
			t.Errorf("env %s: %s", e.Name, msg)
		}
		if _, dup := envVals[e.Name]; dup {
			t.Errorf("env %s twice", e.Name)
		}
		for _, r := range ref.FindAllStringSubmatch(e.Value, -1) {
			if _, ok := envVals[r[1]]; !ok {
				t.Errorf("env %s refers to $(%s), not defined before it", e.Name, r[1])
			}
		}
		if e.ValueFrom != nil && e.Value != "" {
			t.Errorf("env %s: value and valueFrom", e.Name)
		}
		envVals[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "COFFER_") {
			envKeys = append(envKeys, e.Name)
		}
	}
	checkEnvKeys(t, "StatefulSet env", envKeys)
	// expand resolves $(VAR) for pod NAME, as the kubelet does.
	expand := func(v, name string) string {
		for i := 0; i < 5 && ref.MatchString(v); i++ {
			v = ref.ReplaceAllStringFunc(v, func(s string) string {
				k := s[2 : len(s)-1]
				if k == "POD_NAME" {
					return name
				}
				return envVals[k]
			})
		}
		return v
	}

	// Node ids are the pod names; the node ids, certificates and join
	// list agree with the headless Service.
	if envVals["COFFER_NODE_ID"] != "$(POD_NAME)" {
		t.Error("COFFER_NODE_ID must be $(POD_NAME): a stable node id per pod")
	}
	podName := findEnvFrom(c, "POD_NAME")
	if podName != "metadata.name" {
		t.Error("POD_NAME must come from metadata.name")
	}
	if envVals["COFFER_BOOTSTRAP_EXPECT"] != strconv.Itoa(replicas) {
		t.Errorf("COFFER_BOOTSTRAP_EXPECT=%s, want the replicas (%d)", envVals["COFFER_BOOTSTRAP_EXPECT"], replicas)
	}
	for _, adv := range []string{"COFFER_CLUSTER_ADVERTISE", "COFFER_GOSSIP_ADVERTISE"} {
		if !strings.HasPrefix(envVals[adv], "$(POD_IP):") || findEnvFrom(c, "POD_IP") != "status.podIP" {
			t.Errorf("%s must be $(POD_IP):port with POD_IP from status.podIP (the ports bind 0.0.0.0)", adv)
		}
	}

	var headless, api *corev1.Service
	for _, s := range m.services {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = s
		} else {
			api = s
		}
	}
	if headless == nil || api == nil {
		t.Fatal("want a headless Service (clusterIP: None) and a Service for the API")
	}
	if spec.ServiceName != headless.Name {
		t.Errorf("serviceName %q is not the headless Service %q", spec.ServiceName, headless.Name)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Error("the headless Service must publish not-ready addresses: pods find each other before any is ready")
	}
	gossip := portByName(c, intstr.FromString("gossip-tcp"), corev1.ProtocolTCP)
	if gossip == nil {
		t.Fatal("no gossip-tcp container port")
	}
	var join []string
	for i := 0; i < replicas; i++ {
		join = append(join, fmt.Sprintf("%s-%d.%s:%d", sts.Name, i, headless.Name, gossip.ContainerPort))
	}
	if got := strings.Split(envVals["COFFER_JOIN"], ","); !slices.Equal(got, join) {
		t.Errorf("COFFER_JOIN=%v, want %v", got, join)
	}
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s: selector %v does not select the pods %v", s.Name, s.Spec.Selector, podLabels)
		}
		for _, p := range s.Spec.Ports {
			for _, e := range validation.IsValidPortNum(int(p.Port)) {
				t.Errorf("Service %s port %s: %s", s.Name, p.Name, e)
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if portByName(c, p.TargetPort, proto) == nil {
				t.Errorf("Service %s port %s: targetPort %s/%s is no container port", s.Name, p.Name, p.TargetPort.String(), proto)
			}
		}
	}
	if len(headless.Spec.Ports) == 0 || len(api.Spec.Ports) == 0 {
		t.Error("Services without ports")
	}

	// Probes: the health endpoints, on a port that exists, over HTTPS.
	for name, want := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"readinessProbe": {c.ReadinessProbe, "/v1/health/ready"}, "livenessProbe": {c.LivenessProbe, "/v1/health/live"}} {
		p := want.probe
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", name)
			continue
		}
		if p.HTTPGet.Path != want.path || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s: %s %s, want HTTPS %s", name, p.HTTPGet.Scheme, p.HTTPGet.Path, want.path)
		}
		cp := portByName(c, p.HTTPGet.Port, corev1.ProtocolTCP)
		if cp == nil {
			t.Errorf("%s: port %s is no container port", name, p.HTTPGet.Port.String())
		} else if _, port, _ := strings.Cut(envVals["COFFER_API_ADDR"], ":"); port != strconv.Itoa(int(cp.ContainerPort)) {
			t.Errorf("%s: port %d is not the API's (%s)", name, cp.ContainerPort, envVals["COFFER_API_ADDR"])
		}
	}

	// Volumes: every mount has a volume or a claim template; the data
	// directory is on the claim; the secrets are read-only.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	claims := map[string]bool{}
	for _, vct := range spec.VolumeClaimTemplates {
		claims[vct.Name] = true
		if len(vct.Spec.AccessModes) == 0 || vct.Spec.Resources.Requests.Storage().IsZero() {
			t.Errorf("volumeClaimTemplate %s: accessModes and a storage request are required", vct.Name)
		}
	}
	mountOf := func(path string) *corev1.VolumeMount {
		var best *corev1.VolumeMount
		for i, vm := range c.VolumeMounts {
			if (path == vm.MountPath || strings.HasPrefix(path, vm.MountPath+"/")) && (best == nil || len(vm.MountPath) > len(best.MountPath)) {
				best = &c.VolumeMounts[i]
			}
		}
		return best
	}
	for _, vm := range c.VolumeMounts {
		if _, ok := vols[vm.Name]; !ok && !claims[vm.Name] {
			t.Errorf("volumeMount %s: no such volume or volumeClaimTemplate", vm.Name)
		}
	}
	if vm := mountOf(envVals["COFFER_DATA_DIR"]); vm == nil || !claims[vm.Name] || vm.ReadOnly {
		t.Errorf("COFFER_DATA_DIR %s is not on a writable volumeClaimTemplate", envVals["COFFER_DATA_DIR"])
	}
	// Every file the env names comes from a Secret, and for each pod the
	// Secret holds that file (as the header's kubectl commands make it).
	secretFiles := map[string][]string{}
	for _, cmd := range regexp.MustCompile(`kubectl create secret generic ([a-z0-9-]+)((?:[^\n]*\\\n)*[^\n]*)`).FindAllStringSubmatch(m.header, -1) {
		for _, f := range regexp.MustCompile(`--from-file=([^\s\\]+)`).FindAllStringSubmatch(cmd[2], -1) {
			secretFiles[cmd[1]] = append(secretFiles[cmd[1]], f[1])
		}
	}
	for _, k := range []string{"COFFER_TLS_CA_FILE", "COFFER_TLS_CERT_FILE", "COFFER_TLS_KEY_FILE", "COFFER_GOSSIP_KEY_FILE", "COFFER_ROOT_KEY_FILE"} {
		for i := 0; i < replicas; i++ {
			path := expand(envVals[k], fmt.Sprintf("%s-%d", sts.Name, i))
			vm := mountOf(path)
			if vm == nil || !vm.ReadOnly {
				t.Errorf("%s=%s: not on a read-only mount", k, path)
				continue
			}
			v, ok := vols[vm.Name]
			if !ok || v.Secret == nil {
				t.Errorf("%s=%s: mount %s is not a Secret", k, path, vm.Name)
				continue
			}
			file := strings.TrimPrefix(path, vm.MountPath+"/")
			if !slices.Contains(secretFiles[v.Secret.SecretName], file) {
				t.Errorf("%s=%s: the header's `kubectl create secret generic %s` does not put %s in it (it has %v)",
					k, path, v.Secret.SecretName, file, secretFiles[v.Secret.SecretName])
			}
		}
	}
	for name, files := range secretFiles {
		for _, f := range files {
			if strings.Contains(f, "ca-key") {
				t.Errorf("Secret %s holds %s: the CA key must stay out of the cluster", name, f)
			}
		}
	}

	// Non-root, as the image: no privilege, no capability.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Error("the pod must run as non-root uid 65532 (the image's user)")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
		!slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("the container must drop ALL capabilities, forbid privilege escalation and have a read-only root")
	}
	if pod.ServiceAccountName != "" {
		found := false
		for _, a := range m.accounts {
			found = found || a.Name == pod.ServiceAccountName
		}
		if !found {
			t.Errorf("serviceAccountName %s: no such ServiceAccount here", pod.ServiceAccountName)
		}
	}

	// At most one node down at a time.
	pdb := m.pdbs[0]
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Error("the PodDisruptionBudget must say maxUnavailable: 1 (and no minAvailable)")
	}
	if pdb.Spec.Selector == nil {
		t.Fatal("PodDisruptionBudget without selector")
	}
	if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !s.Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget's selector does not match the pods (%v)", err)
	}
}

// findEnvFrom is the fieldPath an env var of c is taken from.
func findEnvFrom(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

// TestKubernetesStrict proves the decoding refuses what it should.
func TestKubernetesStrict(t *testing.T) {
	var s appsv1.StatefulSet
	bad := []byte("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  replica: 3\n")
	if err := yaml.UnmarshalStrict(bad, &s); err == nil || !bytes.Contains([]byte(err.Error()), []byte("replica")) {
		t.Errorf("an unknown field was accepted (%v)", err)
	}
}
