/* version.h - the toolkit version every tool's --version prints. */
#ifndef EVO_VERSION_H
#define EVO_VERSION_H

#define EVO_VERSION "0.1.0"

#endif
