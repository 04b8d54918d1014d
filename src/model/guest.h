/*
 * Guests as Proxmox sees them: the config a declared guest should have (from
 * a validated pvelab.yaml guest), and the Proxmox semantics the planner needs
 * to compare it with a live config without phantom diffs, and to know how a
 * change reaches a running guest (live, at reboot, by replacement).
 */
#ifndef PL_MODEL_GUEST_H
#define PL_MODEL_GUEST_H

#include "core/common.h"

#include <jansson.h>

/* The tag pvelab puts on the guests it manages. */
#define PL_MODEL_MANAGED_TAG "pvelab"

struct pl_model_guest {
	char *name;
	bool lxc;
	long long vmid;   /* 0 when it is to be allocated */
	char *node;       /* NULL: the planner picks one */
	char *category;   /* NULL when none */
	bool running;     /* desired power state */
	json_t *config;   /* Proxmox config keys -> values (strings or integers) */
	json_t *create;   /* creation-only parameters: ostemplate, pool, clone {template, full, storage} */
	json_t *defaults; /* config keys pvelab filled in for a create, never compared with a
			   * live guest: key -> "all" (the YAML has none: rootfs) or "storage"
			   * (the YAML gives no storage: compared on the live one) */
};

/* Build the desired model of one validated config guest (defaults applied). */
int pl_model_guest_from_config(const json_t *guest, struct pl_model_guest *out, char **errmsg);
void pl_model_guest_release(struct pl_model_guest *g);

/* How a change reaches the guest. Ordered: a plan's guest takes its largest. */
enum pl_change_class {
	PL_CHANGE_NONE,
	PL_CHANGE_LIVE,    /* applied at once (config-only, or hotplugged) */
	PL_CHANGE_REBOOT,  /* stays pending until the guest reboots */
	PL_CHANGE_RESTART, /* needs a stop and a start (e.g. PCI devices) */
	PL_CHANGE_REPLACE, /* cannot be changed in place: destroy and recreate */
};

const char *pl_change_class_name(enum pl_change_class c);

/* The result of comparing one key. */
struct pl_model_cmp {
	bool equal;
	enum pl_change_class cls; /* when not equal */
	char *value;              /* what to send to reach desired (caller frees); NULL = delete */
	char *note;               /* e.g. "resize 32G -> 64G", "cannot shrink"; or NULL */
	bool resize;              /* a disk grows: use the resize call with size */
	char *size;               /* the new disk size ("64G") when resize */
	bool blocked;             /* impossible in place even with replace allowed (shrink) */
};

/* Compare a desired value with the live one (either may be NULL: absent).
 * hotplug is the guest's hotplug setting (NULL: PVE's default
 * "network,disk,usb"); running says whether the guest runs now. */
void pl_model_compare(bool lxc, const char *key, const char *desired, const char *actual,
		      bool running, const char *hotplug, struct pl_model_cmp *out);
void pl_model_cmp_release(struct pl_model_cmp *c);

/* Check a config about to be created with the schema's codecs (every property
 * string parses); *needs (new object) maps each storage its disks name to the
 * content type they need there ("images", "rootdir"). */
int pl_model_create_check(bool lxc, const json_t *config, json_t **needs, char **errmsg);
/* Keys Proxmox maintains itself; never compared (digest, meta, vmgenid...). */
bool pl_model_key_ignored(const char *key);
/* Indexed keys pvelab manages as a whole collection (net0.., mp0.., ipconfig0..,
 * hostpci0..): live ones beyond the desired count are removed. */
bool pl_model_key_collection(bool lxc, const char *key);
/* A live config value as text (numbers and booleans as PVE writes them). */
char *pl_model_value_text(const json_t *v);
/* Whether a live guest (with "tags") is managed by pvelab: it carries the tag
 * pvelab or a project's pvelab-<project>. */
bool pl_model_is_managed(const json_t *live);

/* Who manages a live guest, by its tags ("tags", else config's "tags"). */
enum pl_model_owner {
	PL_OWNER_NONE,    /* no pvelab tag: unmanaged */
	PL_OWNER_LEGACY,  /* only "pvelab": made by pvelab before projects */
	PL_OWNER_PROJECT, /* "pvelab-<project>": *project says which (caller frees) */
};
enum pl_model_owner pl_model_owner(const json_t *live, char **project);
/* Whether a live guest is managed by this project. */
bool pl_model_owned_by(const json_t *live, const char *project);
/* The tag of a project's guests, "pvelab-<project>" (caller frees). */
char *pl_model_project_tag(const char *project);
/* Whether a tag is one of pvelab's ("pvelab", "pvelab-<project>"). */
bool pl_model_tag_is_owner(const char *tag);
/* tags (any separators) with "pvelab" and "pvelab-<project>" in and any other
 * project's tag out, normalised (caller frees). */
char *pl_model_tags_owned(const char *tags, const char *project);
/* Split "a;b c,d" tags, lower-cased, sorted, unique, joined with ';'. */
char *pl_model_tags_norm(const char *tags);



/* The pvelab.yaml guest (JSON) that describes a live guest (a snapshot entry
 * {vmid,name,node,type,status,config}) such that planning it against itself
 * shows no changes: known settings as pvelab keys, the rest under `config:`. */
json_t *pl_model_guest_to_yaml(const json_t *live);
#endif
