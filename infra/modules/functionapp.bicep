// Flex Consumption (FC1) plan + Linux Function App, Python 3.13 (the runtime version pinned by requirements.txt), running as the user-assigned
// identity. The host's storage connection is identity-based (AzureWebJobsStorage__*), Key Vault
// references resolve with the same identity (keyVaultReferenceIdentity), and the Azure SDKs in
// shared/ pick it up through AZURE_CLIENT_ID (DefaultAzureCredential).
//
// Flex Consumption takes the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE must NOT be app settings here.
@description('Function App name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Resource tags (the app also gets azd-service-name).')
param tags object = {}

@description('azd service name (azure.yaml) used to find the app on `azd deploy`.')
param serviceName string = 'api'

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Storage endpoints of the host storage account.')
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string

@description('Full URL of the blob container holding the deployment package.')
param deploymentContainerUrl string

@description('Application Insights connection string (not a credential: local auth is disabled).')
param applicationInsightsConnectionString string

@description('The settings the code reads (Settings + binding expressions), built in main.bicep.')
param appSettings object

@description('Browser origins allowed by the platform\'s CORS (CORS_ALLOWED_ORIGINS); empty: none.')
param corsAllowedOrigins array = []

@description('Upper bound of instances the plan scales out to (also caps concurrent NIF calls).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy of a Flex Consumption plan is region-dependent and not set by this template; enable it per region when the vendor's availability target requires it
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// Settings the platform and the host read (not in shared/config.py). tests/test_settings_sync.py
// holds the same names as its explicit allow-list.
var platformSettings = {
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Every function is sync, so the Python worker runs them on one thread pool, by default
  // min(32, cores + 4) threads: 6 on 2 cores, fewer than the 12 export work items host.json's
  // queue batchSize + newBatchThreshold hand an instance, and HTTP calls would queue behind
  // exports that mostly wait on SFTP. 32: the 12 exports, the Service Bus batch and HTTP calls.
  PYTHON_THREADPOOL_THREAD_COUNT: '32'
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // Suppressions (checkov reads them inside the resource body):
  // checkov:skip=CKV_AZURE_222: the vendor's club-management system calls the HTTP API over the internet, authenticated with function/admin keys; add Front Door or private endpoints if the vendor's policy demands it
  // checkov:skip=CKV_AZURE_17: incoming client certificates (mTLS) are not something the callers can present; every route requires a function or admin key
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales on demand up to maximumInstanceCount; the minimum-instance failover setting of dedicated plans does not apply
  // checkov:skip=CKV_AZURE_213: App Service health check (instance eviction) applies to dedicated plans; Flex Consumption instances are managed by the platform. Failures surface in Application Insights
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false // bearer tokens travel in the Authorization header, never in cookies
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// checkov evaluates every Microsoft.Web/sites/config resource as the `web` site config; this one
// is `appsettings` (a name/value map), so the site-config checks skipped inside are false
// positives here. Logging, auth and network settings that matter are on the site resource.
resource appSettingsConfig 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: false positive: `appsettings` config resource, not `web`/authsettings; routes use function/admin keys
  // checkov:skip=CKV_AZURE_63: false positive: `appsettings` config resource; HTTP logging is App Service (web) logging, telemetry goes to Application Insights
  // checkov:skip=CKV_AZURE_65: false positive: `appsettings` config resource; detailed error pages would also leak internals
  // checkov:skip=CKV_AZURE_66: false positive: `appsettings` config resource; failed request tracing is a dedicated-plan IIS feature
  // checkov:skip=CKV_AZURE_80: false positive: `appsettings` config resource; a Python app uses no .NET Framework
  // checkov:skip=CKV_AZURE_88: false positive: `appsettings` config resource; Flex Consumption deploys from blob storage, not Azure Files
  // checkov:skip=CKV_AZURE_222: false positive: `appsettings` config resource; public access is decided on the site (justified there)
  parent: site
  name: 'appsettings'
  properties: union(platformSettings, appSettings)
}

// No FTP and no basic-auth publishing: azd deploys with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output url string = 'https://${site.properties.defaultHostName}'
