// The commands, their drivers and the kit in one import, for the command line, the benchmark and
// the tests. Nothing is defined here: see ARCHITECTURE.md for the layers.
@_exported import MSBKit
@_exported import MSBSnapshot
@_exported import MSBDatabase
@_exported import MSBServices
@_exported import MSBArchive
@_exported import MSBPackages
@_exported import MSBRemote
@_exported import MSBRegion
@_exported import MSBPackageHooks
@_exported import MSBBackupSet
@_exported import MSBPrune
@_exported import MSBVerify
@_exported import MSBBackup
@_exported import MSBRestore
@_exported import MSBRollback
@_exported import MSBRecover
@_exported import MSBStatus
@_exported import MSBPreUpgrade
@_exported import MSBCopy
