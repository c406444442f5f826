// User-assigned managed identity: the one identity the Function App runs as (host storage, data
// tables, Key Vault references, Key Vault SDK reads, Application Insights ingestion).
@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Resource tags.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
