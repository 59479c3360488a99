# hv-core: the hypervisor core library.
$(eval $(call host_lib,hv,hv-core))
