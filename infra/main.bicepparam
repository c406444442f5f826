// Parameters for `azd provision` / `azd up`. Values come from the azd environment
// (.azure/<env>/.env, set with `azd env set NAME value`); azd itself provides AZURE_ENV_NAME,
// AZURE_LOCATION and AZURE_PRINCIPAL_ID. IDRETTSBRO_STAGE=prod switches the sizing to the
// production values of prod.bicepparam. No secrets here: secrets go to Key Vault.
using 'main.bicep'

var stage = readEnvironmentVariable('IDRETTSBRO_STAGE', 'dev')
var isProd = stage == 'prod'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME')
param location = readEnvironmentVariable('AZURE_LOCATION')
param principalId = readEnvironmentVariable('AZURE_PRINCIPAL_ID', '')

param storageSkuName = isProd ? 'Standard_ZRS' : 'Standard_LRS'
param maximumInstanceCount = isProd ? 100 : 40
param logRetentionDays = isProd ? 90 : 30
param logDailyQuotaGb = isProd ? -1 : 1

param nifApiBaseUrl = readEnvironmentVariable('NIF_API_BASE_URL')
param nifQueueName = readEnvironmentVariable('NIF_QUEUE_NAME', 'nif-entity-changes')
param nifDeveloperUserId = readEnvironmentVariable('NIF_DEVELOPER_USER_ID', '')
param idrottonlineApplicationId = readEnvironmentVariable('IDROTTONLINE_APPLICATION_ID', 'idrettsbro')
param exportSchedule = readEnvironmentVariable('IDROTTONLINE_EXPORT_SCHEDULE', '0 0 2 * * *')
