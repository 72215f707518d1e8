import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export type Role = 'viewer' | 'operator' | 'admin';

/** Who is looking: the token's name and role (`open`: the API needs no token here, and everyone acts as admin). */
export interface Who {
  actor: string;
  role: Role;
  open: boolean;
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export const WhoContext = createContext<Who>({ actor: 'anonymous', role: 'viewer', open: false });

/** Whether the session's role may do what needs `role`: views show only the actions it may take. */
export function useCan(role: Role): boolean {
  const who = useContext(WhoContext);
  return RANK[who.role] >= RANK[role];
}
