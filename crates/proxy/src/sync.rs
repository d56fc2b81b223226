//! One transaction from what was applied to what is wanted: the whole table anew (the first
//! sync, after a failure, and periodically, which also repairs rules removed by hand), or only
//! what changed — map elements, and the chains and sets that appeared or went — so a sync
//! costs the same with 10 Services or 10,000.

use crate::nft::{Command, Data, Key, Transaction};
use crate::rules::{self, Config, Ruleset};

/// The table replaced whole by `next`, atomically: add (so the delete cannot fail), delete,
/// create.
pub fn full(config: &Config, next: &Ruleset) -> Transaction {
    let mut commands = vec![Command::AddTable, Command::DeleteTable, Command::AddTable];
    let (declare, fixed_rules) = rules::fixed(config);
    commands.extend(declare);
    for decl in next.sets.values() {
        commands.push(Command::AddSet(decl.clone()));
    }
    for name in next.chains.keys() {
        commands.push(Command::AddChain(name.clone(), None));
    }
    commands.extend(fixed_rules);
    for (name, rules) in &next.chains {
        for rule in rules {
            commands.push(Command::AddRule(name.clone(), rule.clone()));
        }
    }
    add_elements(&mut commands, next.elements.iter());
    Transaction { commands }
}

/// Only what differs between `previous` (applied) and `next`. Order matters within the
/// transaction: new sets and chains exist before rules and elements refer to them, and
/// chains and sets go only after nothing refers to them.
pub fn partial(previous: &Ruleset, next: &Ruleset) -> Transaction {
    let mut commands = Vec::new();
    for (name, decl) in &next.sets {
        if !previous.sets.contains_key(name) {
            commands.push(Command::AddSet(decl.clone()));
        }
    }
    for name in next.chains.keys() {
        if !previous.chains.contains_key(name) {
            commands.push(Command::AddChain(name.clone(), None));
        }
    }
    for (name, rules) in &next.chains {
        match previous.chains.get(name) {
            Some(old) if old == rules => continue,
            Some(_) => commands.push(Command::FlushChain(name.clone())),
            None => {}
        }
        for rule in rules {
            commands.push(Command::AddRule(name.clone(), rule.clone()));
        }
    }
    // Deletions first: an element whose data changed is deleted, then added anew.
    for (entry, data) in &previous.elements {
        if next.elements.get(entry) != Some(data) {
            commands.push(Command::DeleteElement(entry.0.clone(), entry.1.clone()));
        }
    }
    add_elements(
        &mut commands,
        next.elements
            .iter()
            .filter(|(entry, data)| previous.elements.get(*entry) != Some(*data)),
    );
    let gone: Vec<&String> = previous
        .chains
        .keys()
        .filter(|name| !next.chains.contains_key(*name))
        .collect();
    // Emptied first: a chain about to go may still be jumped to by another one about to go.
    for name in &gone {
        commands.push(Command::FlushChain((*name).clone()));
    }
    for name in gone {
        commands.push(Command::DeleteChain(name.clone()));
    }
    for (name, decl) in &previous.sets {
        if !next.sets.contains_key(name) {
            commands.push(Command::DeleteSet(decl.clone()));
        }
    }
    Transaction { commands }
}

/// One `add element` per map for `elements` (sorted by map, as a [`Ruleset`] keeps them).
fn add_elements<'a>(
    commands: &mut Vec<Command>,
    elements: impl Iterator<Item = (&'a (String, Key), &'a Option<Data>)>,
) {
    for ((map, key), data) in elements {
        let entry = (key.clone(), data.clone());
        match commands.last_mut() {
            Some(Command::AddElements(last, batch)) if last == map => batch.push(entry),
            _ => commands.push(Command::AddElements(map.clone(), vec![entry])),
        }
    }
}

/// Removes the proxy's table (`ferry agent --cleanup`); nothing to remove is not an error.
pub fn cleanup() -> Transaction {
    Transaction {
        commands: vec![Command::AddTable, Command::DeleteTable],
    }
}
