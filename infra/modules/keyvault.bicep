// Key Vault in RBAC mode for the app's secrets. The template creates no secret values: operators
// set them with `az keyvault secret set` (docs/deploy.md). App settings point at them with
// versionless Key Vault references, and shared/secrets.py reads per-club secrets at run time.
@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Resource tags.')
param tags object = {}

@description('Log Analytics workspace that receives the vault audit log (who read which secret).')
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // Suppressions (checkov reads them inside the resource body):
  // checkov:skip=CKV_AZURE_109: the Flex Consumption app resolves Key Vault references and reads secrets over the public endpoint (no VNet integration in this template); access is RBAC-only (Key Vault Secrets User for the app identity) and audited to Log Analytics
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109: public network access is required without VNet integration or private endpoints
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource auditLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
