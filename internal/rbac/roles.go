package rbac

import (
	"strings"
	"time"
)

// RoleDefinition is a role: what its holders may do. berth has Azure's
// built-in roles (BuiltIn), with their real GUIDs and permissions.
type RoleDefinition struct {
	ID          string // the role's GUID (a role definition's name)
	RoleName    string
	Description string
	RoleType    string // "BuiltInRole"
	Permissions []Permission
	// AssignableScopes are where the role may be assigned ("/": anywhere).
	AssignableScopes []string
	CreatedOn        time.Time
	UpdatedOn        time.Time

	compiled []compiledPermission
}

// Permission is one block of a role's permissions. Actions are
// control-plane actions, DataActions data-plane ones; the Not… lists are
// subtracted from them. Entries are matched case-insensitively and may
// hold "*" wildcards ("*", "*/read", "Microsoft.Authorization/*/Write").
type Permission struct {
	Actions        []string
	NotActions     []string
	DataActions    []string
	NotDataActions []string
}

type compiledPermission struct {
	actions, notActions, dataActions, notDataActions []pattern
}

// Role GUIDs of the built-in roles berth knows (Azure's own).
const (
	Owner               = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	Contributor         = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	Reader              = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	AcrPull             = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
	AcrPush             = "8311e382-0749-4cb8-b61a-304f252e45ec"
	AcrDelete           = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
	AcrImageSigner      = "6cef56e8-d556-48e5-a04f-b8e64114680f"
	AcrQuarantineReader = "cdda3590-29a3-44f6-95f2-9f980659eb04"
	AcrQuarantineWriter = "c8d4ff99-41c3-41a8-9f60-21dfdad59608"
)

// Registry actions the container-registry roles grant (the registry's token
// service maps them onto repository scopes).
const (
	ActionRegistryPull   = "Microsoft.ContainerRegistry/registries/pull/read"
	ActionRegistryPush   = "Microsoft.ContainerRegistry/registries/push/write"
	ActionRegistryDelete = "Microsoft.ContainerRegistry/registries/artifacts/delete"
)

// builtIn returns Azure's built-in roles that berth serves, as Azure
// defines them (role names, descriptions, permissions).
func builtIn() []*RoleDefinition {
	// The dates Azure shows for these roles are their publication dates;
	// berth shows one fixed date for all of them.
	at := time.Date(2015, 2, 2, 21, 55, 9, 0, time.UTC)
	role := func(id, name, desc string, p Permission) *RoleDefinition {
		return &RoleDefinition{ID: id, RoleName: name, Description: desc, RoleType: "BuiltInRole",
			Permissions: []Permission{p}, AssignableScopes: []string{"/"}, CreatedOn: at, UpdatedOn: at}
	}
	const cr = "Microsoft.ContainerRegistry/registries/"
	return []*RoleDefinition{
		role(Owner, "Owner", "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
			Permission{Actions: []string{"*"}}),
		role(Contributor, "Contributor", "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
			Permission{Actions: []string{"*"}, NotActions: []string{
				"Microsoft.Authorization/*/Delete",
				"Microsoft.Authorization/*/Write",
				"Microsoft.Authorization/elevateAccess/Action",
				"Microsoft.Blueprint/blueprintAssignments/write",
				"Microsoft.Blueprint/blueprintAssignments/delete",
				"Microsoft.Compute/galleries/share/action",
				"Microsoft.Purview/consents/write",
				"Microsoft.Purview/consents/delete",
				"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
				"Microsoft.Subscription/cancel/action",
				"Microsoft.Subscription/enable/action",
			}}),
		role(Reader, "Reader", "View all resources, but does not allow you to make any changes.",
			Permission{Actions: []string{"*/read"}}),
		role(AcrPull, "AcrPull", "acr pull", Permission{Actions: []string{ActionRegistryPull}}),
		role(AcrPush, "AcrPush", "acr push", Permission{Actions: []string{ActionRegistryPull, ActionRegistryPush}}),
		role(AcrDelete, "AcrDelete", "acr delete", Permission{Actions: []string{ActionRegistryDelete}}),
		role(AcrImageSigner, "AcrImageSigner", "acr image signer", Permission{
			Actions: []string{cr + "sign/write"}, DataActions: []string{cr + "trustedCollections/write"}}),
		role(AcrQuarantineReader, "AcrQuarantineReader", "acr quarantine data reader", Permission{
			Actions: []string{cr + "quarantine/read"}, DataActions: []string{cr + "quarantinedArtifacts/read"}}),
		role(AcrQuarantineWriter, "AcrQuarantineWriter", "acr quarantine data writer", Permission{
			Actions:     []string{cr + "quarantine/read", cr + "quarantine/write"},
			DataActions: []string{cr + "quarantinedArtifacts/read", cr + "quarantinedArtifacts/write"}}),
	}
}

func (d *RoleDefinition) compile() {
	d.compiled = nil
	for _, p := range d.Permissions {
		d.compiled = append(d.compiled, compiledPermission{
			actions: compileAll(p.Actions), notActions: compileAll(p.NotActions),
			dataActions: compileAll(p.DataActions), notDataActions: compileAll(p.NotDataActions),
		})
	}
}

// permits reports whether the role grants action (a control-plane action,
// or a data action when data is set): some permission block allows it and
// does not subtract it.
func (d *RoleDefinition) permits(action string, data bool) bool {
	return d.permitsLower(strings.ToLower(action), data)
}

// permitsLower is permits for a lower-case action.
func (d *RoleDefinition) permitsLower(a string, data bool) bool {
	for _, p := range d.compiled {
		allow, deny := p.actions, p.notActions
		if data {
			allow, deny = p.dataActions, p.notDataActions
		}
		if matchAny(allow, a) && !matchAny(deny, a) {
			return true
		}
	}
	return false
}

// Permits reports whether the role grants the control-plane action.
func (d *RoleDefinition) Permits(action string) bool { return d.permits(action, false) }

// pattern is a lower-cased action pattern split at its "*" wildcards.
type pattern []string

func compileAll(ps []string) []pattern {
	out := make([]pattern, 0, len(ps))
	for _, p := range ps {
		out = append(out, strings.Split(strings.ToLower(p), "*"))
	}
	return out
}

func matchAny(ps []pattern, action string) bool {
	for _, p := range ps {
		if p.match(action) {
			return true
		}
	}
	return false
}

// match reports whether the (lower-case) action matches: each "*" stands
// for any run of characters, "/" included, as in Azure's action strings.
func (p pattern) match(s string) bool {
	if len(p) == 1 {
		return s == p[0]
	}
	if !strings.HasPrefix(s, p[0]) {
		return false
	}
	s = s[len(p[0]):]
	last := p[len(p)-1]
	for _, mid := range p[1 : len(p)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
