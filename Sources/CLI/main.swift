import MaasBackupCore
print("maas-snapshot-backup")
