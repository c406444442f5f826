// Development stage, for pipelines with the Bicep CLI:
//   az deployment sub create -l swedencentral -f infra/main.bicep -p infra/dev.bicepparam
// (`azd up` uses main.bicepparam.) No secrets here: secrets go to Key Vault.
using 'main.bicep'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'idrettsbro-dev')
param location = readEnvironmentVariable('AZURE_LOCATION', 'swedencentral')
param principalId = readEnvironmentVariable('AZURE_PRINCIPAL_ID', '')

param storageSkuName = 'Standard_LRS'
param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param logRetentionDays = 30
param logDailyQuotaGb = 1

param nifApiBaseUrl = readEnvironmentVariable('NIF_API_BASE_URL')
param nifTokenMode = 'api'
param nifQueueName = 'nif-entity-changes'
param dataTablesPrefix = 'ib'
param exportSchedule = '0 0 2 * * *'
param idrottonlineApplicationId = 'idrettsbro'
param localTimezone = 'Europe/Oslo'
