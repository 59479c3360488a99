# images: RAM images of real guests (format, load, duplicate analysis),
# libimages.a.  See images/images.h.
$(eval $(call host_lib,images,images))
