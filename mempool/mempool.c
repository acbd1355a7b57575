/* placeholder: the buddy chunk pool is being written */
#include "mempool.h"
