package e2e

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armauth "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/google/uuid"
)

// assignRole makes principalID hold role (a built-in role's name, looked
// up as az does: roleDefinitions with $filter=roleName eq '…') at scope,
// through armauthorization as the well-known service principal (Owner of
// the default subscription).
func assignRole(ctx context.Context, t *testing.T, s *sdk, scope, role, principalID string) {
	t.Helper()
	f, err := armauth.NewClientFactory(s.sub, s.cred, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	pg := f.NewRoleDefinitionsClient().NewListPager(scope, &armauth.RoleDefinitionsClientListOptions{Filter: to.Ptr("roleName eq '" + role + "'")})
	page, err := pg.NextPage(ctx)
	if err != nil || len(page.Value) != 1 {
		t.Fatalf("role %s: %v %+v", role, err, page.Value)
	}
	if _, err := f.NewRoleAssignmentsClient().Create(ctx, scope, uuid.NewString(), armauth.RoleAssignmentCreateParameters{
		Properties: &armauth.RoleAssignmentProperties{RoleDefinitionID: page.Value[0].ID, PrincipalID: to.Ptr(principalID),
			PrincipalType: to.Ptr(armauth.PrincipalTypeServicePrincipal)}}, nil); err != nil {
		t.Fatalf("assign %s to %s at %s: %v", role, principalID, scope, err)
	}
}
