// Package projectapi is a test-only API server (not shipped) that serves
// OpenShift's project.openshift.io/v1 projectrequests and projects as
// OpenShift documents them, behind the real kube-apiserver's aggregation
// layer, so that kubepool's ProjectRequest path is tested where no
// OpenShift can run.
//
// A project request from a user makes a namespace annotated with the
// requester and binds the requester to the admin ClusterRole in it; a user
// sees, patches and deletes the projects it requested (members of
// system:masters see all). The server trusts only requests that the
// aggregator proxies: a client certificate from the cluster's
// request-header CA with an allowed name, carrying the user in
// X-Remote-User and X-Remote-Group.
package projectapi

//lint:file-ignore SA1019 the aggregator may still resolve a service by its Endpoints, so both they and an EndpointSlice are made

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

const (
	group        = "project.openshift.io"
	version      = "v1"
	groupVersion = group + "/" + version
	// RequesterAnnotation names the user who requested a project.
	RequesterAnnotation = "openshift.io/requester"
)

var apiServices = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// ErrNoAggregation is returned by Start when the API server has no
// request-header (front proxy) configuration: aggregated API servers
// cannot be reached through it.
var ErrNoAggregation = errors.New("the API server has no aggregation layer configuration (requestheader-client-ca-file)")

// Server is a running project API server, registered with the cluster.
type Server struct {
	client       kubernetes.Interface
	dyn          dynamic.Interface
	proxyCAs     *x509.CertPool
	allowedNames []string
	srv          *http.Server
	namespace    string // where its Service lives
}

// Start serves the project API on listenIP (an address the API server
// reaches, and a random port), registers it with an APIService and waits
// until the aggregator reports it available. client and dyn act as the
// cluster admin (they make namespaces, as OpenShift's project controller
// does). Stop undoes all of it.
func Start(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, listenIP string) (*Server, error) {
	auth, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the aggregation layer's configuration: %w", err)
	}
	caPEM := auth.Data["requestheader-client-ca-file"]
	if caPEM == "" {
		return nil, ErrNoAggregation
	}
	s := &Server{client: client, dyn: dyn, proxyCAs: x509.NewCertPool()}
	if !s.proxyCAs.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, fmt.Errorf("parsing requestheader-client-ca-file: no certificates")
	}
	_ = json.Unmarshal([]byte(auth.Data["requestheader-allowed-names"]), &s.allowedNames)

	s.namespace = fmt.Sprintf("kubepool-projectapi-%d", time.Now().UnixNano()%1e6)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", s.namespace, err)
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop(context.WithoutCancel(ctx))
		}
	}()
	serverName := "projectapi." + s.namespace + ".svc"
	cert, caBundle, err := selfSigned(serverName)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    s.proxyCAs,
			MinVersion:   tls.VersionTLS12,
		},
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "projectapi", Namespace: s.namespace},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port))}}},
	}
	if _, err := client.CoreV1().Services(s.namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating service: %w", err)
	}
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "projectapi", Namespace: s.namespace, Labels: map[string]string{discoveryv1.LabelServiceName: "projectapi"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{listenIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr(int32(port)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	if _, err := client.DiscoveryV1().EndpointSlices(s.namespace).Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating endpoint slice: %w", err)
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "projectapi", Namespace: s.namespace},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: listenIP}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(port), Protocol: corev1.ProtocolTCP}},
		}},
	}
	if _, err := client.CoreV1().Endpoints(s.namespace).Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating endpoints: %w", err)
	}
	apisvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": version + "." + group},
		"spec": map[string]any{
			"group": group, "version": version,
			"service":              map[string]any{"namespace": s.namespace, "name": "projectapi", "port": int64(443)},
			"caBundle":             base64.StdEncoding.EncodeToString(caBundle),
			"groupPriorityMinimum": int64(1000),
			"versionPriority":      int64(15),
		},
	}}
	if _, err := dyn.Resource(apiServices).Create(ctx, apisvc, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("registering APIService: %w", err)
	}
	if err := s.waitAvailable(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// waitAvailable waits, by watch, for the APIService's Available condition.
func (s *Server) waitAvailable(ctx context.Context) error {
	name := version + "." + group
	for {
		cur, err := s.dyn.Resource(apiServices).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading APIService %s: %w", name, err)
		}
		if available(cur) {
			return nil
		}
		w, err := s.dyn.Resource(apiServices).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: cur.GetResourceVersion()})
		if err != nil {
			return fmt.Errorf("watching APIService %s: %w", name, err)
		}
		for ev := range w.ResultChan() {
			if u, ok := ev.Object.(*unstructured.Unstructured); ok && ev.Type == watch.Modified && available(u) {
				w.Stop()
				return nil
			}
		}
		w.Stop()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for APIService %s to be available: %w", name, err)
		}
	}
}

func available(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// Stop unregisters the APIService, stops serving and deletes the
// namespace of its Service. Projects made through it stay (they are
// namespaces).
func (s *Server) Stop(ctx context.Context) {
	_ = s.dyn.Resource(apiServices).Delete(ctx, version+"."+group, metav1.DeleteOptions{})
	if s.srv != nil {
		_ = s.srv.Close()
	}
	_ = s.client.CoreV1().Namespaces().Delete(ctx, s.namespace, metav1.DeleteOptions{})
}

// user is who the aggregator says is asking.
type user struct {
	name   string
	groups []string
}

func (u user) admin() bool { return slices.Contains(u.groups, "system:masters") }

// authenticate accepts only requests proxied by the aggregator.
func (s *Server) authenticate(r *http.Request) (user, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return user{}, false
	}
	cn := r.TLS.PeerCertificates[0].Subject.CommonName
	if len(s.allowedNames) > 0 && !slices.Contains(s.allowedNames, cn) {
		return user{}, false
	}
	u := user{name: r.Header.Get("X-Remote-User"), groups: r.Header.Values("X-Remote-Group")}
	return u, u.name != ""
}

// ServeHTTP serves discovery, projectrequests and projects.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	// Discovery is public (the aggregator's availability check reads it);
	// the resources are for the users the aggregator vouches for.
	u, ok := s.authenticate(r)
	if !ok && strings.Contains(path, "/"+groupVersion+"/") {
		writeStatus(w, apierrors.NewUnauthorized("not proxied by the aggregator"))
		return
	}
	gv := metav1.GroupVersionForDiscovery{GroupVersion: groupVersion, Version: version}
	apiGroup := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: group, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
	switch {
	case path == "/apis" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{apiGroup}})
	case path == "/apis/"+group && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, apiGroup)
	case path == "/apis/"+groupVersion && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: groupVersion,
			APIResources: []metav1.APIResource{
				{Name: "projectrequests", Kind: "ProjectRequest", Verbs: metav1.Verbs{"create", "list"}},
				{Name: "projects", Kind: "Project", Verbs: metav1.Verbs{"delete", "get", "list", "patch"}},
			},
		})
	case path == "/apis/"+groupVersion+"/projectrequests" && r.Method == http.MethodPost:
		s.requestProject(w, r, u)
	case path == "/apis/"+groupVersion+"/projects" && r.Method == http.MethodGet:
		s.listProjects(w, r, u)
	case strings.HasPrefix(path, "/apis/"+groupVersion+"/projects/"):
		s.project(w, r, u, strings.TrimPrefix(path, "/apis/"+groupVersion+"/projects/"))
	default:
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: group}, path))
	}
}

// projectRequest is OpenShift's ProjectRequest.
type projectRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	DisplayName       string `json:"displayName,omitempty"`
	Description       string `json:"description,omitempty"`
}

// project is OpenShift's Project: a namespace, seen through the project API.
type project struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Finalizers []corev1.FinalizerName `json:"finalizers,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase corev1.NamespacePhase `json:"phase,omitempty"`
	} `json:"status"`
}

type projectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []project `json:"items"`
}

func projectOf(ns *corev1.Namespace) project {
	p := project{TypeMeta: metav1.TypeMeta{Kind: "Project", APIVersion: groupVersion}, ObjectMeta: *ns.ObjectMeta.DeepCopy()}
	p.ManagedFields = nil
	p.Spec.Finalizers = ns.Spec.Finalizers
	p.Status.Phase = ns.Status.Phase
	return p
}

var projectsResource = schema.GroupResource{Group: group, Resource: "projects"}

func (s *Server) requestProject(w http.ResponseWriter, r *http.Request, u user) {
	var req projectRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Name == "" {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("a ProjectRequest with a name is required: %v", err)))
		return
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: req.Name, Annotations: map[string]string{
		RequesterAnnotation:         u.name,
		"openshift.io/display-name": req.DisplayName,
		"openshift.io/description":  req.Description,
	}}}
	created, err := s.client.CoreV1().Namespaces().Create(r.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		writeStatus(w, err)
		return
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "admin", Namespace: req.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: u.name}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
	}
	if _, err := s.client.RbacV1().RoleBindings(req.Name).Create(r.Context(), rb, metav1.CreateOptions{}); err != nil {
		writeStatus(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, projectOf(created))
}

// visible reports whether u may see the project ns.
func visible(u user, ns *corev1.Namespace) bool {
	return u.admin() || ns.Annotations[RequesterAnnotation] == u.name
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, u user) {
	sel := r.URL.Query().Get("labelSelector")
	if _, err := labels.Parse(sel); err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	l, err := s.client.CoreV1().Namespaces().List(r.Context(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		writeStatus(w, err)
		return
	}
	out := projectList{TypeMeta: metav1.TypeMeta{Kind: "ProjectList", APIVersion: groupVersion}, Items: []project{}}
	out.ResourceVersion = l.ResourceVersion
	for i := range l.Items {
		if visible(u, &l.Items[i]) {
			out.Items = append(out.Items, projectOf(&l.Items[i]))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) project(w http.ResponseWriter, r *http.Request, u user, name string) {
	ctx := r.Context()
	ns, err := s.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err == nil && !visible(u, ns) {
		err = apierrors.NewForbidden(projectsResource, name, fmt.Errorf("user %q cannot see this project", u.name))
	}
	if err != nil {
		writeStatus(w, err)
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, projectOf(ns))
	case http.MethodDelete:
		if err := s.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			writeStatus(w, err)
			return
		}
		writeJSON(w, http.StatusOK, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
			Details: &metav1.StatusDetails{Name: name, Group: group, Kind: "projects"}})
	case http.MethodPatch:
		// A project's labels and annotations may be changed; nothing else.
		var patch struct {
			Metadata struct {
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"metadata"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&patch); err != nil {
			writeStatus(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		body, _ := json.Marshal(map[string]any{"metadata": patch.Metadata})
		got, err := s.client.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{})
		if err != nil {
			writeStatus(w, err)
			return
		}
		writeJSON(w, http.StatusOK, projectOf(got))
	default:
		writeStatus(w, apierrors.NewMethodNotSupported(projectsResource, r.Method))
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, err error) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		st = apierrors.NewInternalError(err)
	}
	status := st.Status()
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(status.Code), status)
}

// selfSigned makes a CA and a serving certificate for name, and returns the
// certificate and the CA in PEM (the APIService's caBundle).
func selfSigned(name string) (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "projectapi-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

func ptr[T any](v T) *T { return &v }
