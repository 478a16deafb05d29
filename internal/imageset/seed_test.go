package imageset

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/kubepool/kubepool/internal/testenv"
)

// world is a registry seeded the way TripleO CI leaves one: every image has
// many immutable hash tags, a moving tag on the current hash, and an older
// promoted tag.
type world struct {
	reg    *testenv.RegistryServer
	images []Image // the set, tagged :current-tripleo
	hashes []string
	// current is the hash current-tripleo points at; passed the one
	// current-passed-ci points at.
	current, passed string
	// noMoving are images without the moving tag; multiArch are images
	// whose tags are indexes; offHash has current-tripleo on another hash.
	noMoving, multiArch map[string]bool
	offHash             string
}

const (
	movingTag = "current-tripleo"
	passedTag = "current-passed-ci"
	testLabel = "rdo_version"
)

func hashTag(i int) string {
	sum := sha1.Sum([]byte(fmt.Sprint("commit ", i)))
	return hex.EncodeToString(sum[:])
}

// seedWorld starts a registry and seeds it with the 2019 template's images
// (127) × tags hash tags. Blobs are uploaded once per repository; every tag
// is a manifest PUT with its own annotation (so its own digest).
func seedWorld(t testing.TB, tags int, opts ...testenv.RegistryOption) *world {
	t.Helper()
	reg := testenv.Registry(t, opts...)
	images, err := Source{
		Template: "testdata/overcloud_containers.2019.yaml.j2",
		// queens' rules keep the parameters' neutron_driver (null) and
		// have no default tag_from_label: the set these tests were
		// written for (stein's would force ovn and add rdo_version).
		Defaults:   "queens",
		ParamsFile: "testdata/params-2019.yaml",
		Set:        Params{"namespace": reg.Host + "/tripleomaster", "tag": movingTag},
	}.Load()
	if err != nil {
		t.Fatal(err)
	}
	// Keep only the images in our namespace (ceph and openshift point
	// elsewhere in the template).
	images = Filter{}.Apply(images)
	var ours []Image
	for _, img := range images {
		if ref, _ := img.Reference(); ref.RegistryStr() == reg.Host {
			ours = append(ours, img)
		}
	}
	w := &world{reg: reg, images: ours, noMoving: map[string]bool{}, multiArch: map[string]bool{}}
	for i := 0; i < tags; i++ {
		w.hashes = append(w.hashes, hashTag(i))
	}
	w.current, w.passed, w.offHash = w.hashes[tags-3], w.hashes[tags-10], w.hashes[tags-2]
	for _, i := range []int{5, 40, 77} {
		w.noMoving[ours[i].ImageName] = true
	}
	for _, i := range []int{0, 60} {
		w.multiArch[ours[i].ImageName] = true
	}

	ctx := context.Background()
	if tb, ok := t.(interface{ Context() context.Context }); ok {
		ctx = tb.Context()
	}
	// Keep connections alive across the concurrent PUTs.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	pusher, err := remote.NewPusher(remote.WithJobs(4), remote.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	defer func() {
		t.Logf("seeded %d images × %d tags in %v", len(ours), tags, time.Since(start).Round(time.Millisecond))
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for idx, img := range ours {
		g.Go(func() error { return w.seedImage(gctx, pusher, idx, img) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("seeding registry: %v", err)
	}
	return w
}

// baseImage is a tiny OCI image with a random layer and the test labels.
func baseImage(arch, current string) (v1.Image, error) {
	layer := make([]byte, 512)
	if _, err := rand.Read(layer); err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, static.NewLayer(layer, types.OCILayer))
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Labels = map[string]string{testLabel: current, "version": "17.1", "release": current[:8]}
	return mutate.ConfigFile(img, cfg)
}

// annotated returns raw with an annotation making it unique to tag.
func annotated(raw []byte, tag string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["annotations"] = map[string]string{"org.kubepool.test.tag": tag}
	return json.Marshal(m)
}

func (w *world) seedImage(ctx context.Context, pusher *remote.Pusher, idx int, img Image) error {
	repo := img.WithTag("x")
	ref, err := repo.Reference()
	if err != nil {
		return err
	}
	put := func(target name.Reference, body []byte, mt types.MediaType) error {
		return pusher.Put(ctx, target, rawManifest{body: body, mediaType: mt})
	}
	tagRef := func(tag string) name.Tag { return ref.Context().Tag(tag) }
	archs := []string{"amd64"}
	if w.multiArch[img.ImageName] {
		archs = []string{"amd64", "arm64"}
	}
	var bases [][]byte
	for _, arch := range archs {
		base, err := baseImage(arch, w.current)
		if err != nil {
			return err
		}
		if err := pusher.Push(ctx, ref.Context().Tag("base-"+arch), base); err != nil {
			return fmt.Errorf("pushing base of %s: %w", ref.Context(), err)
		}
		raw, err := base.RawManifest()
		if err != nil {
			return err
		}
		bases = append(bases, raw)
	}
	// manifestFor builds (and for indexes, pushes the children of) the
	// manifest of one hash tag.
	manifestFor := func(tag string) ([]byte, types.MediaType, error) {
		if len(archs) == 1 {
			body, err := annotated(bases[0], tag)
			return body, types.OCIManifestSchema1, err
		}
		index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Annotations: map[string]string{"org.kubepool.test.tag": tag}}
		for i, arch := range archs {
			body, err := annotated(bases[i], tag)
			if err != nil {
				return nil, "", err
			}
			d, size, err := v1.SHA256(bytes.NewReader(body))
			if err != nil {
				return nil, "", err
			}
			if err := put(ref.Context().Digest(d.String()), body, types.OCIManifestSchema1); err != nil {
				return nil, "", err
			}
			index.Manifests = append(index.Manifests, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: size, Platform: &v1.Platform{OS: "linux", Architecture: arch}})
		}
		body, err := json.Marshal(index)
		return body, types.OCIImageIndex, err
	}
	for _, tag := range w.hashes {
		body, mt, err := manifestFor(tag)
		if err != nil {
			return err
		}
		if err := put(tagRef(tag), body, mt); err != nil {
			return fmt.Errorf("tagging %s: %w", tagRef(tag), err)
		}
		if tag == w.passed {
			if err := put(tagRef(passedTag), body, mt); err != nil {
				return err
			}
		}
		moving := w.current
		if idx == 20 {
			moving = w.offHash
		}
		if tag == moving && !w.noMoving[img.ImageName] {
			if err := put(tagRef(movingTag), body, mt); err != nil {
				return err
			}
		}
	}
	return nil
}
