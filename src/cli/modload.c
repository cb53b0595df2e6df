/* Finds and loads missive-commands.so (module.h): beside the executable
 * in a build tree, else MSV_MODULE_DIR relative to it (an installed tree,
 * wherever its prefix now lies), else MSV_MODULE_DIR_ABS. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "module.h"

/* The module's build ID against ours (module.h).  The commit is compared
 * as a bounded string: the module's may lack its NUL. */
static int same_build(const cli_module_id *id)
{
	static const size_t layout[CLI_MODULE_NLAYOUT] = CLI_MODULE_LAYOUT;
	return !strncmp(id->commit, MSV_BUILD_COMMIT, sizeof(id->commit)) &&
	       !memcmp(id->layout, layout, sizeof(layout));
}

const cli_module *cli_module_get(void)
{
	/* The program's own state, not the library's: one module per process. */
	static const cli_module *loaded;
	if (loaded)
		return loaded;
	char exe[PATH_MAX], path[PATH_MAX + 64], tried[3 * (PATH_MAX + 64)] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
	if (slash)
		*slash = '\0';
	const char *dirs[] = {slash ? exe : NULL, slash ? exe : NULL, MSV_MODULE_DIR_ABS};
	const char *subs[] = {"", ("/" MSV_MODULE_DIR), ""};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s%s/%s", dirs[i], subs[i], CLI_MODULE_FILE);
		size_t tl = strlen(tried);
		snprintf(tried + tl, sizeof(tried) - tl, "%s%s", tl ? ", " : "", path);
		if (access(path, F_OK))
			continue;
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		const cli_module *m = h ? dlsym(h, CLI_MODULE_SYMBOL) : NULL;
		if (!m) {
			cli_err("cannot load %s: %s", path, dlerror());
			return NULL;
		}
		if (!same_build(&m->id)) {
			cli_err("%s is from another build of missive (commit %.12s, this is %.12s): reinstall",
			        path, m->id.commit, MSV_BUILD_COMMIT);
			return NULL;
		}
		return loaded = m;
	}
	cli_err("cannot find %s (looked for %s); reinstall missive", CLI_MODULE_FILE, tried);
	return NULL;
}
