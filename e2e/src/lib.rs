//! End-to-end test harness: starts real etcd, mesos-lite and the Concord binaries.
