// idrettsbro: one environment (resource group) per stage, composed from small modules.
// Entry point for `azd up` (infra/main.bicepparam) and for pipelines
// (`az deployment sub create -f infra/main.bicep -p infra/prod.bicepparam`).
//
// Security model: one user-assigned identity; no secret in any template or app setting value;
// secrets live in an RBAC-mode Key Vault and reach the app as Key Vault references; storage is
// Entra ID-only (shared key off); every role is the narrowest built-in data role, scoped to one
// resource.
targetScope = 'subscription'

// --- Environment ------------------------------------------------------------------------------
@minLength(1)
@maxLength(64)
@description('azd environment name; part of every resource name and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region of every resource (one with Flex Consumption, e.g. norwayeast, swedencentral).')
param location string

@description('Resource group name; empty = rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the deploying user or pipeline principal; gets Key Vault Secrets Officer so it can set the secrets. Empty = none.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

// --- Sizing (per environment in the .bicepparam files) -----------------------------------------
@description('Storage replication: Standard_LRS for dev, Standard_ZRS for production.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Flex Consumption scale-out ceiling (also caps concurrent calls to NIF, and the export workers: each instance runs up to batchSize + newBatchThreshold = 12 work items).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per Flex Consumption instance (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Log Analytics daily ingestion cap in GB (-1 = none).')
param logDailyQuotaGb int = -1

// --- Application settings (names and meaning: shared/config.py) --------------------------------
@minLength(8)
@description('NIF_API_BASE_URL: base URL of NIF\'s API gateway (NIF developer portal).')
param nifApiBaseUrl string

@minValue(1)
@description('NIF_API_VERSION: the v{version} path segment.')
param nifApiVersion int = 1

@allowed([
  'api'
  'static'
])
@description('NIF_TOKEN_MODE: api = GET Token per club; static = portal-issued token per club in Key Vault.')
param nifTokenMode string = 'api'

@description('NIF_DEVELOPER_USER_ID: optional developerUserId for GET Token (empty = not sent).')
param nifDeveloperUserId string = ''

@minLength(1)
@description('NIF_QUEUE_NAME: NIF\'s Service Bus queue for this vendor.')
param nifQueueName string = 'nif-entity-changes'

@description('DATA_TABLES_PREFIX: prefix of every table name.')
@minLength(1)
@maxLength(16)
param dataTablesPrefix string = 'ib'

@description('IDROTTONLINE_EXPORT_SCHEDULE: NCRONTAB (UTC) of the nightly IdrottOnline export.')
param exportSchedule string = '0 0 2 * * *'

@description('IDROTTONLINE_EXPORT_QUEUE: Storage queue of the export work items (its poison queue is <name>-poison).')
@minLength(3)
@maxLength(56)
param exportQueueName string = 'idrottonline-export'

@description('IDROTTONLINE_EXPORT_CONCURRENCY: most clubs exported at once across all instances (concurrent SFTP sessions to RF).')
@minValue(1)
@maxValue(1000)
param exportConcurrency int = 16

@description('IDROTTONLINE_APPLICATION_ID: RF-issued ApplicationId of the vendor system.')
param idrottonlineApplicationId string = 'idrettsbro'

@description('IDROTTONLINE_REMOTE_DIR: upload folder on RF\'s SFTP server.')
param idrottonlineRemoteDir string = '.'

@description('LOCAL_TIMEZONE: zone for calendar rules (the timer itself runs in UTC).')
param localTimezone string = 'Europe/Oslo'

// --- Callers (docs/security.md) ---------------------------------------------------------------
@allowed([
  'keys'
  'tokens'
])
@description('AUTH_MODE: keys = the host checks function/master keys; tokens = HTTP routes anonymous at the host, the app checks bearer tokens and its own keys.')
param authMode string = 'keys'

@description('AUTH_ISSUER: the OIDC issuer of front-end and back-end tokens (empty: tokens are refused).')
param authIssuer string = ''

@description('AUTH_AUDIENCE: expected aud of bearer tokens (the API\'s application id URI).')
param authAudience string = ''

@description('AUTH_CLUBS_CLAIM: the claim listing the clubs a user may act for.')
param authClubsClaim string = 'clubs'

@description('AUTH_CLUBS_PREFIX: only clubs-claim values with this prefix count (e.g. club. for Entra app roles).')
param authClubsPrefix string = ''

@description('CORS_ALLOWED_ORIGINS: browser origins allowed to call the API, comma-separated (Function App CORS).')
param corsAllowedOrigins string = ''

// --- Names --------------------------------------------------------------------------------------
var abbrs = {
  resourceGroup: 'rg-'
  managedIdentity: 'id-'
  storageAccount: 'st'
  keyVault: 'kv-'
  logAnalytics: 'log-'
  applicationInsights: 'appi-'
  functionsPlan: 'plan-'
  functionApp: 'func-'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'idrettsbro'
}
var functionAppName = '${abbrs.functionApp}${resourceToken}'
var keyVaultName = '${abbrs.keyVault}${resourceToken}'
var storageAccountName = '${abbrs.storageAccount}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

// --- Secrets (names only; values are set by the operator, see docs/deploy.md) ------------
var secretNames = {
  nifSubscriptionKey: 'nif-subscription-key'
  nifServiceBusConnection: 'nif-servicebus-connection'
  apiFunctionKey: 'api-function-key' // AUTH_MODE=tokens: the back ends' key, checked by the app
  apiMasterKey: 'api-master-key'
}

// --- Built-in roles (narrowest that work) --------------------------------------------------------
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host: keys, timer leases; Flex deployment package
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // host: internal queues
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // data tables (shared/tables.py)
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // app: read secrets, resolve references
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // operator: set secrets
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentity}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.logAnalytics}${resourceToken}'
    applicationInsightsName: '${abbrs.applicationInsights}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: storageAccountName
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    queueNames: [
      exportQueueName
      '${exportQueueName}-poison'
    ]
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

// --- Role assignments: the app module depends on all of them so Key Vault references, the host
// storage connection and telemetry work on the very first start. --------------------------------
module storageAccess 'modules/storage-access.bicep' = {
  name: 'storage-access-app'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.storageBlobDataOwner
      roles.storageQueueDataContributor
      roles.storageTableDataContributor
    ]
  }
}

module keyVaultAccess 'modules/keyvault-access.bicep' = {
  name: 'keyvault-access-app'
  scope: rg
  params: {
    keyVaultName: keyVault.outputs.name
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.keyVaultSecretsUser
  }
}

module monitoringAccess 'modules/monitoring-access.bicep' = {
  name: 'monitoring-access-app'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
  }
}

module operatorKeyVaultAccess 'modules/keyvault-access.bicep' = if (!empty(principalId)) {
  name: 'keyvault-access-operator'
  scope: rg
  params: {
    keyVaultName: keyVault.outputs.name
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.keyVaultSecretsOfficer
  }
}

// --- App settings: every field of shared.config.Settings and every binding setting
// (BINDING_SETTINGS). tests/test_settings_sync.py fails when this object and the code disagree.
// Secrets are versionless Key Vault references, resolved with keyVaultReferenceIdentity.
// DATA_TABLES_CONNECTION is deliberately absent: Azure uses DATA_TABLES_ENDPOINT with the
// managed identity (a connection string would need the shared key, which is disabled).
var appSettings = {
  // NIF REST API
  NIF_API_BASE_URL: nifApiBaseUrl
  NIF_API_VERSION: string(nifApiVersion)
  NIF_SUBSCRIPTION_KEY: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.nifSubscriptionKey})'
  NIF_TOKEN_MODE: nifTokenMode
  NIF_STATIC_TOKEN_SECRET: 'nif-token-{club_id}'
  NIF_DEVELOPER_USER_ID: nifDeveloperUserId
  NIF_TOKEN_REFRESH_MARGIN_SECONDS: '300'
  NIF_CONNECT_TIMEOUT_SECONDS: '5'
  NIF_READ_TIMEOUT_SECONDS: '20'
  NIF_MAX_CONNECTIONS: '50'
  // NIF entity-change queue: NIF's namespace, so a connection string (Key Vault), not an identity
  NIF_QUEUE_NAME: nifQueueName
  NifServiceBus: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.nifServiceBusConnection})'
  // Storage (managed identity through AZURE_CLIENT_ID)
  DATA_TABLES_ENDPOINT: storage.outputs.tableEndpoint
  DATA_TABLES_PREFIX: dataTablesPrefix
  STORAGE_TIMEOUT_SECONDS: '10'
  // Secrets read at run time (per-club SFTP credentials, static NIF tokens)
  KEY_VAULT_URL: keyVault.outputs.uri
  // General
  LOCAL_TIMEZONE: localTimezone
  // IdrottOnline export
  IDROTTONLINE_EXPORT_SCHEDULE: exportSchedule
  IDROTTONLINE_APPLICATION_ID: idrottonlineApplicationId
  IDROTTONLINE_MAX_FILE_BYTES: '10000000'
  IDROTTONLINE_REMOTE_DIR: idrottonlineRemoteDir
  SFTP_CONNECT_TIMEOUT_SECONDS: '10'
  SFTP_OPERATION_TIMEOUT_SECONDS: '30'
  SFTP_DEADLINE_SECONDS: '240'
  EXPORT_LOCK_SECONDS: '900'
  IDROTTONLINE_EXPORT_QUEUE: exportQueueName
  IDROTTONLINE_EXPORT_CONCURRENCY: string(exportConcurrency)
  IDROTTONLINE_OVERDUE_NIGHTS: '2'
  // NIF payments: the outbox's retry timer (docs/payments.md)
  NIF_PAYMENTS_RETRY_SCHEDULE: '0 */5 * * * *'
  NIF_PAYMENTS_MAX_AGE_HOURS: '72'
  NIF_PAYMENTS_RETRY_BASE_SECONDS: '60'
  NIF_PAYMENTS_RETRY_MAX_SECONDS: '3600'
  NIF_PAYMENTS_PENDING_GRACE_SECONDS: '120'
  NIF_PAYMENTS_RETRY_CONCURRENCY: '8'
  // Callers: keys, OIDC tokens, CORS (docs/security.md)
  AUTH_MODE: authMode
  AUTH_ISSUER: authIssuer
  AUTH_AUDIENCE: authAudience
  AUTH_ALGORITHMS: 'RS256,PS256,ES256'
  AUTH_CLOCK_SKEW_SECONDS: '60'
  AUTH_CLUBS_CLAIM: authClubsClaim
  AUTH_CLUBS_PREFIX: authClubsPrefix
  AUTH_ROLES_CLAIM: 'roles'
  AUTH_ROLE_READONLY: 'idrettsbro.readonly'
  AUTH_ROLE_ALL_CLUBS: 'idrettsbro.allclubs'
  AUTH_ROLE_ADMIN: 'idrettsbro.admin'
  AUTH_HTTP_TIMEOUT_SECONDS: '5'
  AUTH_JWKS_MAX_AGE_SECONDS: '3600'
  AUTH_JWKS_MIN_REFRESH_SECONDS: '30'
  AUTH_FUNCTION_KEY: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.apiFunctionKey})'
  AUTH_MASTER_KEY: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.apiMasterKey})'
  CORS_ALLOWED_ORIGINS: corsAllowedOrigins
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.functionsPlan}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: appSettings
    corsAllowedOrigins: empty(corsAllowedOrigins) ? [] : split(corsAllowedOrigins, ',')
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
  dependsOn: [
    storageAccess
    keyVaultAccess
    monitoringAccess
  ]
}

// --- Outputs (azd stores them in .azure/<env>/.env) ----------------------------------------------
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.logAnalyticsId
