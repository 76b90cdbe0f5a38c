package registry

// The Go azcontainerregistry SDK (v0.2.3) performs every operation of the
// ACR client library README against the registry.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	acr "github.com/Azure/azure-sdk-for-go/sdk/containers/azcontainerregistry"
)

// testAADToken is the Entra ID token the fake credential hands out and the
// test Authenticator accepts.
const testAADToken = "aad-token-for-tests"

// fakeCredential is an azcore.TokenCredential returning testAADToken for the
// registry audience.
type fakeCredential struct{ scopes atomic.Value }

func (c *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.scopes.Store(o.Scopes)
	return azcore.AccessToken{Token: testAADToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// withAAD makes the test Authenticator accept testAADToken.
func withAAD(c *Config) {
	a := c.Auth.(StaticAuth)
	a.AADToken = testAADToken
	c.Auth = a
}

// sdkClients returns the SDK's clients for the env, authenticated with cred
// (nil: anonymous).
func (e *env) sdkClients(cred azcore.TokenCredential) (*acr.Client, *acr.BlobClient) {
	e.t.Helper()
	opts := azcore.ClientOptions{
		Transport: e.client,
		Cloud:     cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{acr.ServiceName: {Audience: "https://containerregistry.azure.net"}}},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
	c, err := acr.NewClient(e.base, cred, &acr.ClientOptions{ClientOptions: opts})
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := acr.NewBlobClient(e.base, cred, &acr.BlobClientOptions{ClientOptions: opts})
	if err != nil {
		e.t.Fatal(err)
	}
	return c, b
}

// sdkUpload uploads a layer, a config and an OCI manifest with a tag, as the
// README's upload example does, and returns the manifest's digest.
func sdkUpload(t *testing.T, c *acr.Client, b *acr.BlobClient, repo, tag string, seed int) (manifest string, blobs []string) {
	ctx := context.Background()
	upload := func(data []byte) string {
		start, err := b.StartUpload(ctx, repo, nil)
		if err != nil {
			t.Fatalf("StartUpload: %v", err)
		}
		calc := acr.NewBlobDigestCalculator()
		up, err := b.UploadChunk(ctx, *start.Location, bytes.NewReader(data), calc, nil)
		if err != nil {
			t.Fatalf("UploadChunk: %v", err)
		}
		done, err := b.CompleteUpload(ctx, *up.Location, calc, nil)
		if err != nil {
			t.Fatalf("CompleteUpload: %v", err)
		}
		return *done.DockerContentDigest
	}
	layer := []byte(fmt.Sprintf("hello world %d", seed))
	ld := upload(layer)
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, ld))
	cd := upload(config)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d,"annotations":{"title":"artifact.txt"}}]}`,
		cd, len(config), ld, len(layer))
	res, err := c.UploadManifest(ctx, repo, tag, acr.ContentTypeApplicationVndOciImageManifestV1JSON, streaming.NopCloser(bytes.NewReader([]byte(m))), nil)
	if err != nil {
		t.Fatalf("UploadManifest: %v", err)
	}
	return *res.DockerContentDigest, []string{cd, ld}
}

func TestAzureSDK(t *testing.T) {
	t.Parallel()
	anonymous := atomic.Bool{}
	e := newEnv(t, realStores(t), withAAD, func(c *Config) { c.AnonymousPull = anonymous.Load })
	cred := &fakeCredential{}
	c, b := e.sdkClients(cred)
	ctx := context.Background()

	// Upload layer + config + OCI manifest with a tag, several times.
	var digests []string
	var blobs [][]string
	for i := range 5 {
		e.clock.Advance(time.Minute) // distinct lastUpdateTime for the order
		d, bs := sdkUpload(t, c, b, "library/hello-world", fmt.Sprintf("v%d", i), i)
		digests, blobs = append(digests, d), append(blobs, bs)
	}
	sdkUpload(t, c, b, "other", "latest", 99)
	if s, _ := cred.scopes.Load().([]string); !slices.Equal(s, []string{"https://containerregistry.azure.net/.default"}) {
		t.Errorf("credential asked for scopes %v", s)
	}

	// List repositories.
	var repos []string
	for p := c.NewListRepositoriesPager(&acr.ClientListRepositoriesOptions{MaxNum: to.Ptr[int32](1)}); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListRepositories: %v", err)
		}
		for _, n := range page.Names {
			repos = append(repos, *n)
		}
	}
	if !slices.Equal(repos, []string{"library/hello-world", "other"}) {
		t.Errorf("repositories %v", repos)
	}

	// Download the manifest and its blobs, checking digests.
	mres, err := c.GetManifest(ctx, "library/hello-world", "v1", &acr.ClientGetManifestOptions{Accept: to.Ptr(string(acr.ContentTypeApplicationVndOciImageManifestV1JSON))})
	if err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	vr, err := acr.NewDigestValidationReader(*mres.DockerContentDigest, mres.ManifestData)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := io.ReadAll(vr)
	if err != nil || *mres.DockerContentDigest != digests[1] {
		t.Fatalf("manifest %s: %v", *mres.DockerContentDigest, err)
	}
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{m.Config.Digest, m.Layers[0].Digest} {
		res, err := b.GetBlob(ctx, "library/hello-world", d, nil)
		if err != nil {
			t.Fatalf("GetBlob %s: %v", d, err)
		}
		vr, err := acr.NewDigestValidationReader(d, res.BlobData)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(vr); err != nil {
			t.Errorf("blob %s: %v", d, err)
		}
	}

	// Properties.
	props, err := c.GetManifestProperties(ctx, "library/hello-world", digests[1], nil)
	if err != nil {
		t.Fatalf("GetManifestProperties: %v", err)
	}
	if a := props.Manifest; *a.Architecture != acr.ArtifactArchitectureAmd64 || *a.OperatingSystem != acr.ArtifactOperatingSystemLinux || len(a.Tags) != 1 || *a.Tags[0] != "v1" {
		t.Errorf("manifest properties %+v", a)
	}
	rp, err := c.GetRepositoryProperties(ctx, "library/hello-world", nil)
	if err != nil || *rp.ManifestCount != 5 || *rp.TagCount != 5 || *rp.Name != "library/hello-world" {
		t.Errorf("repository properties %+v %v", rp, err)
	}

	// Set manifest properties: lock v4's manifest, then its tag.
	up, err := c.UpdateManifestProperties(ctx, "library/hello-world", digests[4], &acr.ClientUpdateManifestPropertiesOptions{
		Value: &acr.ManifestWriteableProperties{CanWrite: to.Ptr(false), CanDelete: to.Ptr(false)}})
	if err != nil || *up.Manifest.ChangeableAttributes.CanWrite || *up.Manifest.ChangeableAttributes.CanDelete || !*up.Manifest.ChangeableAttributes.CanRead {
		t.Fatalf("UpdateManifestProperties: %+v %v", up.Manifest, err)
	}
	if _, err := c.DeleteManifest(ctx, "library/hello-world", digests[4], nil); err == nil {
		t.Error("deleted a delete-disabled manifest")
	}
	if _, err := c.UpdateManifestProperties(ctx, "library/hello-world", digests[4], &acr.ClientUpdateManifestPropertiesOptions{
		Value: &acr.ManifestWriteableProperties{CanWrite: to.Ptr(true), CanDelete: to.Ptr(true)}}); err != nil {
		t.Fatal(err)
	}
	tp, err := c.UpdateTagProperties(ctx, "library/hello-world", "v0", &acr.ClientUpdateTagPropertiesOptions{
		Value: &acr.TagWriteableProperties{CanList: to.Ptr(false)}})
	if err != nil || *tp.Tag.ChangeableAttributes.CanList {
		t.Fatalf("UpdateTagProperties: %+v %v", tp, err)
	}
	if _, err := c.UpdateTagProperties(ctx, "library/hello-world", "v0", &acr.ClientUpdateTagPropertiesOptions{
		Value: &acr.TagWriteableProperties{CanList: to.Ptr(true)}}); err != nil {
		t.Fatal(err)
	}

	// List tags with anonymous access.
	anonymous.Store(true)
	ac, _ := e.sdkClients(nil)
	var tags []string
	for p := ac.NewListTagsPager("library/hello-world", &acr.ClientListTagsOptions{MaxNum: to.Ptr[int32](2)}); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("anonymous ListTags: %v", err)
		}
		for _, tag := range page.Tags {
			tags = append(tags, *tag.Name)
		}
	}
	if !slices.Equal(tags, []string{"v0", "v1", "v2", "v3", "v4"}) {
		t.Errorf("anonymous tags %v", tags)
	}
	if _, err := ac.DeleteTag(ctx, "library/hello-world", "v0", nil); err == nil {
		t.Error("anonymous client deleted a tag")
	}
	anonymous.Store(false)
	if p := ac.NewListTagsPager("other", nil); true {
		if _, err := p.NextPage(ctx); err == nil {
			t.Error("anonymous access after it was switched off")
		}
	}

	// Delete all but the three newest manifests of every repository.
	for rp := c.NewListRepositoriesPager(nil); rp.More(); {
		page, err := rp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Names {
			i := 0
			for mp := c.NewListManifestsPager(*r, &acr.ClientListManifestsOptions{OrderBy: to.Ptr(acr.ArtifactManifestOrderByLastUpdatedOnDescending)}); mp.More(); {
				mpage, err := mp.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range mpage.Attributes {
					if i++; i <= 3 {
						continue
					}
					for _, tag := range m.Tags {
						if _, err := c.DeleteTag(ctx, *r, *tag, nil); err != nil {
							t.Fatalf("DeleteTag %s: %v", *tag, err)
						}
					}
					if _, err := c.DeleteManifest(ctx, *r, *m.Digest, nil); err != nil {
						t.Fatalf("DeleteManifest %s: %v", *m.Digest, err)
					}
				}
			}
		}
	}
	tags = nil
	for p := c.NewListTagsPager("library/hello-world", &acr.ClientListTagsOptions{OrderBy: to.Ptr(acr.ArtifactTagOrderByLastUpdatedOnAscending)}); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range page.Tags {
			tags = append(tags, *tag.Name)
		}
	}
	if !slices.Equal(tags, []string{"v2", "v3", "v4"}) {
		t.Errorf("tags after keeping three: %v", tags)
	}

	// Delete a manifest, then its blobs.
	if _, err := c.DeleteManifest(ctx, "library/hello-world", digests[2], nil); err != nil {
		t.Fatalf("DeleteManifest: %v", err)
	}
	if _, err := c.GetManifest(ctx, "library/hello-world", digests[2], nil); err == nil {
		t.Error("deleted manifest still served")
	}
	for _, d := range blobs[2] {
		if _, err := b.DeleteBlob(ctx, "library/hello-world", d, nil); err != nil {
			t.Fatalf("DeleteBlob %s: %v", d, err)
		}
		if _, err := b.GetBlob(ctx, "library/hello-world", d, nil); err == nil {
			t.Errorf("deleted blob %s still served", d)
		}
	}

	// Delete a repository.
	if _, err := c.DeleteRepository(ctx, "other", nil); err != nil {
		t.Errorf("DeleteRepository: %v", err)
	}
	if _, err := c.GetRepositoryProperties(ctx, "other", nil); err == nil {
		t.Error("deleted repository still there")
	}
}
