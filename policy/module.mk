# policy: the overcommit policy engine's decision core (libpolicy.a), a
# pure library: inputs in, decisions out (policy.h).
$(eval $(call host_lib,policy,policy))
