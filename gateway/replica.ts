/** How this replica names itself wherever it says "this replica" (figures, audit records): host and process. */
import { hostname } from 'node:os';

export const REPLICA: string = `${hostname()}:${process.pid}`;
