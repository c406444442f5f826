// Data-plane roles on the storage account for one principal. Names are deterministic
// (guid(scope, principal, role)) so redeployments are idempotent.
@description('Name of the existing storage account.')
param storageAccountName string

@description('Object id of the principal receiving the roles.')
param principalId string

@description('ServicePrincipal for a managed identity, User for a person.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

@description('Built-in role definition ids (GUIDs) to grant on the account.')
param roleDefinitionIds array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    properties: {
      principalId: principalId
      principalType: principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]
