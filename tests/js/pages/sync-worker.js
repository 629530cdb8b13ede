// A module worker for the sync tests: the package and the helpers as self.h.
import { install } from "/sync-helpers.js";
install();
self.annalReady = true;
postMessage("ready");
