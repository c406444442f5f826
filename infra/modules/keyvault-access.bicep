// Key Vault data-plane role for one principal (vault in RBAC mode, no access policies).
@description('Name of the existing Key Vault.')
param keyVaultName string

@description('Object id of the principal receiving the role.')
param principalId string

@description('ServicePrincipal for a managed identity, User for a person.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

@description('Built-in role definition id (GUID): Key Vault Secrets User for the app, Secrets Officer for the operator.')
param roleDefinitionId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleDefinitionId)
  scope: vault
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
  }
}
