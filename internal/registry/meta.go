package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/store"
)

// tables names the registry's tables in the state store. Keys:
//
//	registry/<name>/repositories  <repo>                       repositoryRecord
//	registry/<name>/blobs         <repo>@<digest>              linkRecord: the blob is part of repo
//	registry/<name>/manifests     <repo>@<digest>              manifestRecord
//	registry/<name>/tags          <repo>:<tag>                 tagRecord
//	registry/<name>/referrers     <repo>@<subject>@<digest>    empty: digest's subject is subject
//	registry/<name>/uploads       <upload id>                  uploadRecord
//
// Content is shared: the blob store holds each digest once for the whole
// registry, and the blobs and manifests tables link it into repositories.
// Repository names contain neither '@' nor ':', so a prefix scan of
// "<repo>@" or "<repo>:" never reaches another repository.
type tables struct {
	repositories, blobs, manifests, tags, referrers, uploads string
}

func newTables(registry string) tables {
	p := "registry/" + strings.ToLower(registry) + "/"
	return tables{
		repositories: p + "repositories",
		blobs:        p + "blobs",
		manifests:    p + "manifests",
		tags:         p + "tags",
		referrers:    p + "referrers",
		uploads:      p + "uploads",
	}
}

// all returns every table, for Destroy.
func (t tables) all() []string {
	return []string{t.repositories, t.blobs, t.manifests, t.tags, t.referrers, t.uploads}
}

func repoKey(repo, digest string) string { return repo + "@" + digest }
func tagKey(repo, tag string) string     { return repo + ":" + tag }
func referrerKey(repo, subject, digest string) string {
	return repo + "@" + subject + "@" + digest
}

// Stored records. They are the registry's own format and change only in
// backward-compatible ways; wire structs live beside their handlers.

// attributes are ACR's changeable attributes, stored inverted so that the
// zero value (and a record written before attributes existed) means
// everything is enabled.
type attributes struct {
	NoDelete bool `json:"noDelete,omitempty"`
	NoWrite  bool `json:"noWrite,omitempty"`
	NoList   bool `json:"noList,omitempty"`
	NoRead   bool `json:"noRead,omitempty"`
}

// deletable reports whether the attributes allow a delete: ACR refuses
// deletes of locked (write-disabled) items too.
func (a attributes) deletable() bool { return !a.NoDelete && !a.NoWrite }

// repositoryRecord: the repository exists (it has had content pushed).
type repositoryRecord struct {
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
	Attrs   attributes `json:"attrs,omitzero"`
}

// linkRecord: the blob is part of the repository. Created is when it was
// last pushed, mounted or read there (reads renew it now and then, see
// linkStale), from which garbage collection counts the link grace period.
type linkRecord struct {
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// manifestRecord: the manifest is part of the repository. Its bytes are the
// blob of the same digest.
type manifestRecord struct {
	MediaType string    `json:"mediaType"`
	Size      int64     `json:"size"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated,omitzero"`
	// What ACR and the referrers API report about it.
	ArtifactType    string            `json:"artifactType,omitempty"`
	ConfigMediaType string            `json:"configMediaType,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	Subject         string            `json:"subject,omitempty"`
	Architecture    string            `json:"architecture,omitempty"`
	OS              string            `json:"os,omitempty"`
	// ImageSize is the manifest's size plus its config's and layers'.
	ImageSize int64 `json:"imageSize,omitempty"`
	// Blobs are the config and layers it references; Manifests the
	// manifests of an index, with their platforms.
	Blobs     []string      `json:"blobs,omitempty"`
	Manifests []platformRef `json:"manifests,omitempty"`
	Attrs     attributes    `json:"attrs,omitzero"`
}

// platformRef is one manifest of an index.
type platformRef struct {
	Digest       string `json:"digest"`
	Architecture string `json:"architecture,omitempty"`
	OS           string `json:"os,omitempty"`
}

// tagRecord: the tag points at a manifest of the repository.
type tagRecord struct {
	Digest  string     `json:"digest"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
	Attrs   attributes `json:"attrs,omitzero"`
}

// uploadRecord: an upload in progress, bound to the repository it was
// started in. Its bytes are the blob.Store upload of the same id.
type uploadRecord struct {
	Repository string    `json:"repository"`
	Started    time.Time `json:"started"`
}

// getJSON reads a record. found is false when the key does not exist.
func getJSON(tx store.Tx, table, key string, v any) (found bool, err error) {
	b, err := tx.Get(table, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", table, key, err)
	}
	return true, nil
}

func putJSON(tx store.Tx, table, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(table, key, b)
}

// exists reports whether key is in table.
func exists(tx store.Tx, table, key string) (bool, error) {
	_, err := tx.Get(table, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// scanKeys returns the keys of table under prefix, in order.
func scanKeys(tx store.Tx, table, prefix string) ([]string, error) {
	var keys []string
	err := tx.Scan(table, prefix, func(k string, _ []byte) bool {
		keys = append(keys, k)
		return true
	})
	return keys, err
}

// digestOf converts a stored digest string.
func digestOf(s string) digest.Digest { return digest.Digest(s) }
