# ksm: content-based page sharing (libksm.a).
$(eval $(call host_lib,ksm,ksm))
