package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/registries"
)

// imageImporter copies images between registries with a registry client,
// as ACR's importImage does: from any reachable registry (another berth
// registry, or one on the network) into a berth registry. It writes into
// berth's registry as the default service principal.
type imageImporter struct {
	// transport trusts the system roots and berth's CA; it reads the
	// source (as a trusted Azure service would). target writes into
	// berth's registry (as the registry's own work); nil: transport.
	transport http.RoundTripper
	target    http.RoundTripper
	// local reports whether a registry host is one of berth's: importing
	// from it needs no credentials (as ACR imports within a tenant).
	local func(host string) bool
}

var _ registries.Importer = imageImporter{}

// Import implements registries.Importer.
func (im imageImporter) Import(ctx context.Context, into *registries.Registry, req registries.ImportRequest) error {
	src, err := name.ParseReference(req.SourceRegistry + "/" + req.SourceImage)
	if err != nil {
		return apierr.New(apierr.Invalid, "InvalidParameter", "The source image '%s' is invalid: %v", req.SourceImage, err)
	}
	berthAuth := &authn.Basic{Username: identity.DefaultClientID, Password: identity.DefaultClientSecret}
	var srcAuth authn.Authenticator = authn.Anonymous
	switch {
	case req.Username != "" || req.Password != "":
		srcAuth = &authn.Basic{Username: req.Username, Password: req.Password}
	case im.local != nil && im.local(req.SourceRegistry):
		srcAuth = berthAuth
	}
	desc, err := remote.Get(src, remote.WithContext(ctx), remote.WithAuth(srcAuth), remote.WithTransport(im.transport))
	if err != nil {
		return sourceError(req, err)
	}
	dstAuth := remote.WithAuth(berthAuth)
	dst := im.target
	if dst == nil {
		dst = im.transport
	}
	opts := []remote.Option{remote.WithContext(ctx), dstAuth, remote.WithTransport(dst)}

	targets := req.TargetTags
	if len(targets) == 0 && len(req.Untagged) == 0 {
		// ACR's default: the source repository and tag.
		repo := src.Context().RepositoryStr()
		if t, ok := src.(name.Tag); ok {
			targets = []string{repo + ":" + t.TagStr()}
		} else {
			req.Untagged = []string{repo}
		}
	}
	var refs []name.Reference
	for _, t := range targets {
		ref, err := name.NewTag(into.LoginServer + "/" + t)
		if err != nil {
			return apierr.New(apierr.Invalid, "InvalidParameter", "The target tag '%s' is invalid: %v", t, err)
		}
		if !req.Force {
			if _, err := remote.Head(ref, opts...); err == nil {
				return apierr.New(apierr.Conflict, "TagAlreadyExists",
					"The target tag '%s' already exists in registry '%s'. Use mode 'Force' to overwrite it.", t, into.Name)
			}
		}
		refs = append(refs, ref)
	}
	for _, repo := range req.Untagged {
		ref, err := name.NewDigest(into.LoginServer + "/" + repo + "@" + desc.Digest.String())
		if err != nil {
			return apierr.New(apierr.Invalid, "InvalidParameter", "The target repository '%s' is invalid: %v", repo, err)
		}
		refs = append(refs, ref)
	}
	for _, ref := range refs {
		if err := writeDescriptor(ref, desc, opts); err != nil {
			return fmt.Errorf("import %s into %s: %w", src, ref, err)
		}
	}
	return nil
}

func writeDescriptor(ref name.Reference, desc *remote.Descriptor, opts []remote.Option) error {
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return remote.WriteIndex(ref, idx, opts...)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return remote.Write(ref, img, opts...)
}

// sourceError turns a failure to read the source into ACR's import errors.
func sourceError(req registries.ImportRequest, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return apierr.New(apierr.Invalid, "InvalidSourceRegistryCredentials",
				"The source registry '%s' refused the credentials given for image '%s'.", req.SourceRegistry, req.SourceImage)
		case http.StatusNotFound:
			return apierr.New(apierr.Invalid, "SourceImageNotFound",
				"The source image '%s' was not found in registry '%s'.", req.SourceImage, req.SourceRegistry)
		}
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i > 0 && len(msg) > 200 {
		msg = msg[:200]
	}
	return apierr.New(apierr.Invalid, "SourceRegistryUnreachable",
		"The source registry '%s' could not be reached to import '%s': %s", req.SourceRegistry, req.SourceImage, msg)
}
