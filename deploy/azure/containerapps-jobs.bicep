// flowleaks on Azure Container Apps jobs: N scheduled jobs, job K scanning shard K/N, and one
// scheduled merge job. See deploy/azure/README.md for why it is N jobs (a Container Apps job's
// replicas get no index) and for the one-time set-up this template expects to exist.
//
//   az deployment group create -g <resource-group> -f deploy/azure/containerapps-jobs.bicep \
//     -p environmentName=<environment> storageName=<nfs-storage> image=<registry>/flowleaks:0.1.0 \
//        registryServer=<registry> identityNames='["flowleaks-shard-0","flowleaks-shard-1"]' \
//        fingerprintKeySecretUrl=https://<vault>.vault.azure.net/secrets/flowleaks-fingerprint-key
//
// No secret value is in this template or its parameters: the jobs sign in with user-assigned managed
// identities (--auth managed-identity), and the fingerprint key is a Key Vault reference read by the
// job's identity.

@description('Region of the jobs (the environment\'s).')
param location string = resourceGroup().location

@description('Existing Container Apps environment (workload profiles, in a VNet: NFS Azure Files needs one).')
param environmentName string

@description('Existing environment storage of type NfsAzureFile (az containerapp env storage set --storage-type NfsAzureFile ...), mounted at /data.')
param storageName string

@description('The flowleaks image built from the repository\'s Dockerfile.')
param image string

@description('Registry server to pull the image from with the first identity (AcrPull); empty for a public image.')
param registryServer string = ''

@description('Number of shards N. Keep it from night to night (see deploy/README.md before changing it).')
@minValue(1)
@maxValue(64)
param shardCount int = 4

@description('User-assigned managed identities in this resource group, each registered as a Power Platform management app. One name: every shard shares it (and its API limits). N names: shard K uses the K-th (its own limits).')
@minLength(1)
param identityNames array

@description('Key Vault secret URL of the fingerprint key (e.g. https://<vault>.vault.azure.net/secrets/flowleaks-fingerprint-key). Every identity needs "Key Vault Secrets User" on it. One key for every shard, every night and the merge.')
param fingerprintKeySecretUrl string

@description('Scan schedule (UTC, 5 fields).')
param scanCron string = '0 1 * * *'

@description('Merge schedule (UTC): after the scan\'s latest end, scan start + scanTimeoutSeconds.')
param mergeCron string = '0 5 * * *'

@description('A scan replica is stopped after this long (it resumes the next night; the shard reports itself incomplete).')
param scanTimeoutSeconds int = 10800

@description('Extra scan options, e.g. [\'--known-vault\', \'kv-prod\'].')
param extraScanArgs array = []

var identityCount = length(identityNames)

resource environment 'Microsoft.App/managedEnvironments@2025-07-01' existing = {
  name: environmentName
}

resource identities 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = [for name in identityNames: {
  name: name
}]

// exit 1 (open findings) means the shard did its work: the replica succeeds, and the merge job's
// exit code is the night's verdict. 2 (usage), 3 (incomplete) and 4 (error) stay failures.
var scanWrapper = 'rc=$?; if [ "$rc" -eq 1 ]; then exit 0; fi; exit "$rc"'

resource scanJobs 'Microsoft.App/jobs@2025-07-01' = [for k in range(0, shardCount): {
  name: 'flowleaks-scan-${k}'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identities[k % identityCount].id}': {}
    }
  }
  properties: {
    environmentId: environment.id
    configuration: {
      triggerType: 'Schedule'
      scheduleTriggerConfig: {
        cronExpression: scanCron
        parallelism: 1               // one replica: a job's replicas carry no index to shard on
        replicaCompletionCount: 1
      }
      replicaTimeout: scanTimeoutSeconds
      replicaRetryLimit: 1
      secrets: [
        {
          name: 'fingerprint-key'
          keyVaultUrl: fingerprintKeySecretUrl
          identity: identities[k % identityCount].id
        }
      ]
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identities[k % identityCount].id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'scan'
          image: image
          command: [
            '/bin/sh'
            '-c'
          ]
          args: [
            'flowleaks scan --as-admin --auth managed-identity --shard ${k}/${shardCount} --db /data/shard-${k}.duckdb --summary-json /data/shard-${k}.json --quiet ${join(extraScanArgs, ' ')}; ${scanWrapper}'
          ]
          env: [
            {
              name: 'FLOWLEAKS_CLIENT_ID'  // the user-assigned identity to sign in with
              value: identities[k % identityCount].properties.clientId
            }
            {
              name: 'FLOWLEAKS_FINGERPRINT_KEY'
              secretRef: 'fingerprint-key'
            }
          ]
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          volumeMounts: [
            {
              volumeName: 'data'
              mountPath: '/data'
            }
          ]
        }
      ]
      volumes: [
        {
          name: 'data'
          storageType: 'NfsAzureFile'
          storageName: storageName
        }
      ]
    }
  }
}]

resource mergeJob 'Microsoft.App/jobs@2025-07-01' = {
  name: 'flowleaks-merge'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identities[0].id}': {}
    }
  }
  properties: {
    environmentId: environment.id
    configuration: {
      triggerType: 'Schedule'
      scheduleTriggerConfig: {
        cronExpression: mergeCron
        parallelism: 1
        replicaCompletionCount: 1
      }
      replicaTimeout: 3600
      replicaRetryLimit: 1           // exit 4: a shard database still in use
      secrets: [
        {
          name: 'fingerprint-key'
          keyVaultUrl: fingerprintKeySecretUrl
          identity: identities[0].id
        }
      ]
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identities[0].id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'merge'
          image: image
          // the shell expands the glob to the shard databases that exist; a missing shard makes the
          // merge exit 3 (incomplete), never clean
          command: [
            '/bin/sh'
            '-c'
          ]
          args: [
            'exec flowleaks merge /data/tenant.duckdb /data/shard-*.duckdb'
          ]
          env: [
            {
              name: 'FLOWLEAKS_FINGERPRINT_KEY'
              secretRef: 'fingerprint-key'
            }
          ]
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          volumeMounts: [
            {
              volumeName: 'data'
              mountPath: '/data'
            }
          ]
        }
      ]
      volumes: [
        {
          name: 'data'
          storageType: 'NfsAzureFile'
          storageName: storageName
        }
      ]
    }
  }
}

output scanJobNames array = [for k in range(0, shardCount): scanJobs[k].name]
output mergeJobName string = mergeJob.name
