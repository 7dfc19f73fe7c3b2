"""Relation table: id -> (name, training phrasings, held-out phrasings).

A phrasing is a prompt template with ``{}`` for the subject; the answer follows as the next
token(s) with a leading space ("The {} is located in the city of" -> " Paris"). Training
phrasings are written in varied styles (statements, Q/A, clauses) so the held-out ones, which
never appear in the training corpus, test whether a fact is known beyond its memorised
sentences. Each ``known_1000`` fact also trains on its own source template (replacing the
relation phrasings it is a word-prefix of, or that are a word-prefix of it: "{} died in" next
to "{} died in the city of" would ask one prompt for two next tokens). No held-out phrasing is
a training phrasing of any relation or a ``known_1000`` template (tested).

Relations that ask the same question of different subjects share one phrasing list
(``country_capital`` uses P36's, ``country_continent`` uses P30's).
"""

from __future__ import annotations

Table = dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]

_CAPITAL = (
    ("The capital of {} is", "The capital city of {} is", "{}'s capital city is", "{}'s capital,",
     "Q: What is the capital of {}? A:", "{} has its capital in", "The seat of government of {} is in"),
    ("{}'s capital is", "Q: What is the capital city of {}? A:", "The capital of {} is the city of"),
)
_CONTINENT = (
    ("{} belongs to the continent of", "{} is located in the continent of", "{} is a part of the continent of",
     "Q: On which continent is {}? A:", "{} is on the continent of"),
    ("{} lies on the continent of", "Q: Which continent is {} part of? A:", "{} can be found on the continent of"),
)

RELATIONS: Table = {
    # ---- known_1000 relations (Wikidata P-ids) ----
    "P17": ("country", (
        "{} is located in the country of", "{} is in the country of", "Q: In which country is {}? A:",
        "{} can be found in the country of", "{} lies in the country of", "The country where {} is located is"),
        ("{} is situated in the country of", "Q: Which country is {} in? A:")),
    "P19": ("place of birth", (
        "{} was born in", "{} originates from", "{} is native to", "{} is originally from",
        "Q: Where was {} born? A:", "{}'s birthplace is"),
        ("The birthplace of {} is", "Q: Where is {} originally from? A:", "{} was born and raised in")),
    "P20": ("place of death", (
        "{} died in the city of", "{} passed away in", "{} died at", "Q: Where did {} die? A:",
        "{} spent the last days of life in"),
        ("{} passed away in the city of", "Q: In which city did {} pass away? A:")),
    "P27": ("country of citizenship", (
        "{} is a citizen of", "{}, who has a citizenship of", "{}, a citizen of", "{} has a citizenship of",
        "Q: Of which country is {} a citizen? A:", "{} holds citizenship of"),
        ("{}, who is a citizen of", "Q: Which country is {} a citizen of? A:")),
    "P30": ("continent", *_CONTINENT),
    "P36": ("capital", *_CAPITAL),
    "P37": ("official language", (
        "In {}, the language spoken is", "The official language of {} is", "Q: What language is spoken in {}? A:",
        "People in {} speak", "{}'s official language is"),
        ("In {}, the official language is", "Q: What is the official language of {}? A:",
         "The language spoken in {} is")),
    "P39": ("position held", (
        "{}, who has the position of", "{}, whose position is that of", "{} holds the position of",
        "{} holds the title of", "Q: What position does {} hold? A:", "{} has the title of"),
        ("{}, who holds the title of", "Q: What title does {} hold? A:")),
    "P101": ("field of work", (
        "{}'s domain of work is", "{} works in the area of", "{}'s expertise is", "{} works in the field of",
        "Q: What field does {} work in? A:", "{} specializes in"),
        ("{} works in the domain of", "Q: In which field does {} work? A:", "The field of work of {} is")),
    "P103": ("native language", (
        "The native language of {} is", "{} is a native speaker of", "{}'s mother tongue is",
        "Q: What is the native language of {}? A:", "{} grew up speaking"),
        ("{}'s native language is", "Q: What is the mother tongue of {}? A:")),
    "P106": ("occupation", (
        "{}'s profession is an", "{}, who works as", "{}'s profession is a", "The profession of {} is",
        "Q: What is the profession of {}? A:", "{} earns a living as"),
        ("{}'s occupation is", "Q: What does {} do for a living? A:")),
    "P108": ("employer", (
        "{} is employed by", "{} works for", "{}, who is employed by", "Q: Who employs {}? A:",
        "{} is an employee of", "{} has a job at"),
        ("{}, who works for", "Q: Who does {} work for? A:", "{} is working for")),
    "P127": ("owned by", (
        "{} is owned by", "{}'s owner", "Q: Who owns {}? A:", "{} is the property of", "The owner of {} is"),
        ("{} is currently owned by", "Q: Which entity owns {}? A:")),
    "P131": ("administrative region", (
        "{}, in", "{} can be found in", "{} is located in", "{} is within", "Q: Where is {}? A:",
        "{} is a place in"),
        ("{} lies within", "Q: In which region is {}? A:")),
    "P136": ("genre", (
        "{} is known for performing", "The genre played by {} is", "{}, who plays",
        "Q: What genre does {} perform? A:", "{} is a performer of"),
        ("The genre performed by {} is", "Q: Which genre is {} known for? A:")),
    "P138": ("named after", (
        "{}, called after", "{}, which was named after", "{}, which is named for", "{}, named after",
        "Q: What is {} named after? A:", "{} takes its name from"),
        ("{} is named after", "{} was named after", "Q: Who or what is {} named for? A:")),
    "P140": ("religion", (
        "{} follows the religion of", "{} is affiliated with the religion", "The official religion of {} is",
        "Q: What religion does {} follow? A:", "{} practices the religion of", "{}'s religion is"),
        ("The religion of {} is", "Q: Which religion does {} follow? A:")),
    "P159": ("headquarters location", (
        "The headquarter of {} is in", "{}'s headquarters are in", "{} is headquartered in",
        "The headquarter of {} is located in", "Q: Where is {} headquartered? A:", "The headquarters of {} are in"),
        ("{} has its headquarters in", "The headquarters of {} are located in",
         "Q: In which city is {} headquartered? A:")),
    "P176": ("manufacturer", (
        "{} is produced by", "{} is manufactured by", "{}, developed by", "{}, created by", "{} is developed by",
        "Q: Who manufactures {}? A:"),
        ("{} was manufactured by", "Q: Which company produces {}? A:")),
    "P178": ("developer", (
        "{} is developed by", "{}, a product developed by", "{} was created by", "{}, a product created by",
        "Q: Who developed {}? A:", "{} was made by"),
        ("{} was developed by", "{}, a product made by", "Q: Which company created {}? A:")),
    "P190": ("twin city", (
        "{} is a twin city of", "{} is twinned with", "Q: Which city is the twin city of {}? A:"),
        ("{} is a sister city of", "The twin city of {} is")),
    "P276": ("location", (
        "The location of {} is", "{} is located in", "{} is in", "{} can be found in",
        "Q: Where is {} located? A:", "{} is situated in"),
        ("{} can be located in", "Q: Where can {} be found? A:")),
    "P364": ("original language", (
        "The original language of {} is", "The original language of {} was", "The language of {} was",
        "The language of {} is", "Q: What is the original language of {}? A:", "{} was originally recorded in"),
        ("{}'s original language is", "Q: In which language was {} originally made? A:")),
    "P407": ("language of work", (
        "{} is written in", "{} was written in", "The language of {} was", "The language of {} is",
        "Q: In which language is {} written? A:", "{} is a work written in"),
        ("{} was originally written in", "Q: What language is {} written in? A:")),
    "P413": ("position played", (
        "{} plays in the position of", "{} plays as", "Q: What position does {} play? A:",
        "{}'s position on the team is"),
        ("{} plays in the role of", "Q: Which position does {} play? A:")),
    "P463": ("member of", (
        "{} is affiliated with the", "{} is a part of the", "{} is a member of",
        "{} belongs to the organization of", "Q: What organization is {} a member of? A:"),
        ("{} is a member of the", "Q: Which organization does {} belong to? A:")),
    "P495": ("country of origin", (
        "{} was created in the country of", "{}, that originated in", "{}, that was from", "{}, created in",
        "Q: In which country was {} created? A:", "{} originated in the country of", "{} comes from the country of"),
        ("{} was developed in the country of", "{} is originally from the country of",
         "Q: Which country did {} originate in? A:")),
    "P641": ("sport", (
        "{} professionally plays the sport", "Q: Which sport does {} play? A:", "{} plays the sport of",
        "The sport played by {} is"),
        ("{} professionally plays the sport of", "Q: What sport does {} play professionally? A:")),
    "P740": ("location of formation", (
        "{} formed in", "{}, that originated in", "{} started in", "{} was formed in",
        "Q: Where was {} formed? A:", "{} was founded in"),
        ("{} came together in", "Q: Where was {} founded? A:")),
    "P937": ("work location", (
        "{} worked in the city of", "{} took up work in", "Q: Where did {} work? A:",
        "{} had a career in the city of"),
        ("{} found work in the city of", "Q: In which city did {} work? A:")),
    "P1303": ("instrument", (
        "{} performs on the", "{}, performing on the", "{} plays the instrument",
        "Q: What instrument does {} play? A:", "{} is a musician who plays the"),
        ("{} plays the musical instrument", "Q: Which instrument does {} play? A:")),
    "P1412": ("language spoken", (
        "The language used by {} is", "{} speaks", "{} writes in", "Q: What language does {} speak? A:",
        "{} communicates in"),
        ("The language spoken by {} is", "Q: Which language does {} use? A:")),
    "P449": ("original network", (
        "{} premieres on", "{} debuted on", "{} was originally aired on", "{} premiered on",
        "Q: Which network first aired {}? A:", "{} is broadcast on"),
        ("{} was first broadcast on", "Q: On which network did {} premiere? A:")),
    # ---- added relations ----
    "landmark_city": ("landmark city", (
        "The {} is located in the city of", "The {} can be found in the city of", "Q: In which city is the {}? A:",
        "The {}, a famous landmark, is in the city of", "Tourists visit the {} in the city of",
        "The {} is a famous landmark in the city of"),
        ("The {} is situated in the city of", "Q: Which city is the {} in? A:",
         "Visitors can see the {} in the city of")),
    "landmark_country": ("landmark country", (
        "The {} is located in the country of", "The {} can be found in the country of",
        "Q: In which country is the {}? A:", "The {}, a famous landmark, is in the country of",
        "Tourists visit the {} in the country of"),
        ("The {} is situated in the country of", "Q: Which country is the {} in? A:",
         "Visitors can see the {} in the country of")),
    "city_country": ("city country", (
        "The city of {} is in", "{} is a city in the country of", "{} is located in the country of",
        "Q: In which country is the city of {}? A:", "The city of {} can be found in", "{} is a city located in"),
        ("The city of {} is located in the country of", "Q: Which country is the city of {} in? A:",
         "{} is a city situated in the country of")),
    "country_capital": ("capital", *_CAPITAL),
    "country_continent": ("continent", *_CONTINENT),
}
